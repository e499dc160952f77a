"""The gateway for bench_miss_cpu under granian: the upstream path named by BENCH_UPSTREAM.

`sdk` is the google-genai path (SdkGeminiUpstream, the scheduler's old batching), the baseline;
`direct` is what the gateway ships (GeminiUpstream: httpx + msgspec, large answers decoded in a
worker process). Settings come from GATEWAY_* variables, as `gateway serve` reads them.
"""

from __future__ import annotations

import gc
import os

from litestar import Litestar

KEY = "bench-key"


def create() -> Litestar:
    from gateway.app import create_app
    from gateway.config import Secrets, load_settings
    from gateway.observability.logs import configure_logging
    from gateway.upstream.gemini import GeminiUpstream, Upstream
    from gateway.upstream.gemini_sdk import SdkGeminiUpstream

    settings = load_settings(None, os.environ)
    configure_logging(settings.log)
    kind = os.environ.get("BENCH_UPSTREAM", "direct")
    upstream: Upstream = (
        SdkGeminiUpstream(settings.upstream, KEY)
        if kind == "sdk"
        else GeminiUpstream(settings.upstream, KEY)
    )
    app = create_app(settings, upstream=upstream, secrets=Secrets(KEY, frozenset()))
    gc.collect()
    gc.freeze()  # as gateway.server does
    return app
