"""bench_server's worker factory for the gateway without gc.freeze(); the rest is as shipped."""

from __future__ import annotations

import gc

from litestar import Litestar

from gateway.server import asgi_app


def unfrozen_app() -> Litestar:
    """gateway.server:asgi_app, then gc.unfreeze(): the start-up objects go back to the oldest
    generation, so full collections walk them again, as they did before the freeze."""
    app = asgi_app()
    gc.unfreeze()
    return app
