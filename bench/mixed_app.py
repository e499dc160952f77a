"""The gateway for bench_mixed under granian: bench/miss_app.py's, with the loop probe.

BENCH_UPSTREAM picks the upstream path (`sdk` or `direct`); GATEWAY__LOOP_PROBE=<file> makes
the worker record its event loop's lateness and gc pauses there (GATEWAY__LOOP_PROBE_DEBUG=1:
also asyncio debug's slow callbacks), as `gateway serve` would with the same variables.
BENCH_UNSLICED=1 encodes and sends every answer in one go, as before issue 14's slicing: the
baseline the sliced answers are compared with.
"""

from __future__ import annotations

import os

from litestar import Litestar


def create() -> Litestar:
    from bench.miss_app import create as create_miss_app
    from gateway.api.encoding import chunked, slices
    from gateway.server import install_loop_probe

    if os.environ.get("BENCH_UNSLICED"):
        slices.SLICE_UNITS = 1 << 40  # every answer is one slice
        chunked.PIECE_BYTES = 1 << 40  # and one send
    app = create_miss_app()
    install_loop_probe(app)
    return app
