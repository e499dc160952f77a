"""Before timing: warm each cache and prove hits reach no upstream; and the stampede probe."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import orjson

from gateway.fake import FakeGemini

MODEL = "gemini-embedding-2"
DIMS = 3072


def body(inputs: str | list[str], encoding: str) -> bytes:
    """An OpenAI embeddings request body."""
    return orjson.dumps({"model": MODEL, "input": inputs, "encoding_format": encoding})


def _check(resp: httpx.Response, n: int) -> None:
    if resp.status_code != 200:
        raise RuntimeError(f"{resp.request.url} answered {resp.status_code}: {resp.text[:300]}")
    data = resp.json()["data"]
    if len(data) != n:
        raise RuntimeError(f"expected {n} embeddings, got {len(data)}")


def warm_and_verify(
    url: str,
    payload: bytes,
    n: int,
    fake: FakeGemini,
    headers: dict[str, str] | None = None,
    repeats: int = 3,
) -> int:
    """Send `payload` once (the miss), then `repeats` more that must not reach FakeGemini.

    Returns the upstream items the warm-up cost; raises when a repeat was not a cache hit.
    """
    headers = {"content-type": "application/json", **(headers or {})}
    with httpx.Client(base_url=url, timeout=120.0) as client:
        before = fake.items_received
        _check(client.post("/v1/embeddings", content=payload, headers=headers), n)
        warm_items = fake.items_received - before
        calls = fake.call_count
        for _ in range(repeats):
            _check(client.post("/v1/embeddings", content=payload, headers=headers), n)
        if fake.call_count != calls:
            raise RuntimeError(
                f"{url}: {fake.call_count - calls} upstream calls on repeats: not cache hits"
            )
    return warm_items


async def _stampede(url: str, payload: bytes, clients: int, headers: dict[str, str]) -> list[int]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"content-type": "application/json", **headers}
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:
        # Open every connection first, so the 16 identical requests leave at the same moment.
        await asyncio.gather(*(client.get("/v1/models", headers=headers) for _ in range(clients)))
        posts = [
            client.post("/v1/embeddings", content=payload, headers=headers) for _ in range(clients)
        ]
        replies = await asyncio.gather(*posts)
    return [r.status_code for r in replies]


def stampede_items(
    url: str,
    fake: FakeGemini,
    headers: dict[str, str] | None = None,
    clients: int = 16,
    latency_s: float = 0.2,
) -> int:
    """Upstream items when `clients` concurrent requests carry the same new input.

    FakeGemini answers after `latency_s`, like a real upstream, so the requests overlap in flight.
    """
    payload = body(f"stampede {uuid.uuid4().hex}", "base64")
    saved, fake.latency_s = fake.latency_s, latency_s
    before = fake.items_received
    try:
        statuses = asyncio.run(_stampede(url, payload, clients, headers or {}))
    finally:
        fake.latency_s = saved
    if any(s != 200 for s in statuses):
        raise RuntimeError(f"{url}: stampede statuses {statuses}")
    return fake.items_received - before
