# The gateway as a sidecar or shared service. Build: docker build -t gemini-gateway .
# Run:   docker run -p 8080:8080 -e GEMINI_API_KEY -v gateway-cache:/var/lib/gateway/cache gemini-gateway
# Config is by environment (GATEWAY_<SECTION>_<KEY>), or mount a file at /app/config.toml.

# --- build: the same `pip install .` the README uses, into a venv we copy whole ---------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN python -m venv /opt/gateway && /opt/gateway/bin/pip install .

# --- run: no compiler, no source tree, no root ------------------------------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /app gateway \
    && mkdir -p /app /var/lib/gateway/cache \
    && chown gateway:gateway /var/lib/gateway/cache
COPY --from=build /opt/gateway /opt/gateway
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GATEWAY_SERVER_HOST=0.0.0.0 \
    GATEWAY_SERVER_PORT=8080 \
    GATEWAY_CACHE_DIR=/var/lib/gateway/cache \
    GATEWAY_LOG_FORMAT=json
WORKDIR /app
VOLUME ["/var/lib/gateway/cache"]
USER gateway
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_SERVER_PORT', '8080'), timeout=2)"
# granian stops on SIGTERM: it stops accepting, lets in-flight requests finish (up to
# [server] shutdown_timeout_s), then the app closes the cache; acknowledged writes are on disk.
STOPSIGNAL SIGTERM
CMD ["gateway", "serve"]
