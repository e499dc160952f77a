"""The gateway for bench_miss_cpu under granian: the upstream path named by BENCH_UPSTREAM.

`sdk` is the google-genai path (SdkGeminiUpstream, the scheduler's old batching), the baseline;
`direct` is what the gateway ships (GeminiUpstream: httpx + msgspec, each call made whole in a
worker process). BENCH_HOLD=0 sends partial batches at max_wait_ms always (the scheduler's
baseline, before holding for company). Settings come from GATEWAY_* variables, as `gateway serve`
reads them.
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
    if os.environ.get("BENCH_HOLD", "1") == "0":
        app.state["services"].embedder.scheduler.hold_for_company = False
    gc.collect()
    gc.freeze()  # as gateway.server does
    return app
