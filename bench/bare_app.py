"""The framework's ceiling: a bare litestar app answering POST /v1/embeddings with constant bodies.

Served by granian with one worker, like the gateway. It reads the body and answers a prebuilt
OpenAI-shaped response (a constant 3072-dim vector, base64 or float, for 1 or n inputs): whatever
the gateway spends beyond this is its own work.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import numpy as np
from litestar import Litestar, Request, Response, post

DIMS = 3072


class _Req(msgspec.Struct):
    input: str | list[str]
    encoding_format: str = "float"


def _body(n: int, encoding: str) -> bytes:
    vector = np.random.default_rng(0).standard_normal(DIMS).astype("<f4")
    vector /= np.linalg.norm(vector)
    embedding: Any = (
        base64.b64encode(vector.tobytes()).decode()
        if encoding == "base64"
        else msgspec.Raw(msgspec.json.encode(vector.tolist()))
    )
    data = [{"object": "embedding", "index": i, "embedding": embedding} for i in range(n)]
    usage = {"prompt_tokens": 3 * n, "total_tokens": 3 * n}
    doc = {"object": "list", "data": data, "model": "gemini-embedding-2", "usage": usage}
    return msgspec.json.encode(doc)


def create_app() -> Litestar:
    """Factory for granian: `granian --interface asgi --factory bench.bare_app:create_app`."""
    bodies: dict[tuple[int, str], bytes] = {}
    decode = msgspec.json.Decoder(_Req).decode

    @post("/v1/embeddings", status_code=200)
    async def embeddings(request: Request[Any, Any, Any]) -> Response[bytes]:
        req = decode(await request.body())
        key = (1 if isinstance(req.input, str) else len(req.input), req.encoding_format)
        body = bodies.get(key)
        if body is None:
            body = bodies[key] = _body(*key)
        return Response(body, media_type="application/json")

    return Litestar(route_handlers=[embeddings], logging_config=None, debug=False)
