"""The upstream's port closes under a running gateway: the breaker opens, hits keep flowing."""

from __future__ import annotations

import asyncio
import socket
from contextlib import ExitStack
from pathlib import Path

import httpx

from gateway.app import create_app
from gateway.config import Secrets
from gateway.fake import FakeGemini, run_fake_in_thread
from gateway.upstream.gemini import GeminiUpstream
from gateway.upstream.scheduler import Scheduler
from tests.conftest import make_settings

KEY = "e2e-upstream-key"
MODEL = "gemini-embedding-2"


# What a client sees on each path: the OpenAI error object, its message cut to the telling part.
UNREACHABLE = {
    "type": "upstream_error",
    "code": "upstream_unavailable",
    "param": None,
    "message": "cannot reach the upstream: ConnectError",
}
BREAKER_OPEN = {
    "type": "upstream_error",
    "code": "upstream_unavailable",
    "param": None,
    "message": "(circuit breaker open)",
}


def error_of(reply: httpx.Response) -> dict[str, object]:
    """The reply's OpenAI error object, its message reduced to the marker of its path."""
    error: dict[str, object] = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    message = str(error["message"])
    for expected in (UNREACHABLE, BREAKER_OPEN):
        if str(expected["message"]) in message:
            error["message"] = expected["message"]
    return error


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


async def test_upstream_port_closed_opens_the_breaker_hits_stay_200_misses_503_fast(
    tmp_path: Path,
) -> None:
    fake = FakeGemini()
    with ExitStack() as running:
        base_url = running.enter_context(run_fake_in_thread(fake))
        settings = make_settings(
            tmp_path / "cache",
            upstream={
                "base_url": base_url,
                "max_retries": 2,
                "backoff_base_s": 0.01,
                "backoff_max_s": 0.02,
                "breaker_failures": 2,
                "breaker_cooldown_s": 60.0,
            },
        )
        app = create_app(
            settings,
            upstream=GeminiUpstream(settings.upstream, KEY),
            secrets=Secrets(KEY, frozenset()),
        )
        scheduler = app.state["services"].embedder.scheduler
        assert isinstance(scheduler, Scheduler)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.lifespan(),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as http,
        ):
            warm = await http.post("/v1/embeddings", json={"model": MODEL, "input": "warm"})
            assert warm.status_code == 200
            assert fake.items_received == 1

            await asyncio.to_thread(running.close)  # the upstream goes away: port closed

            # Each miss is one call to the breaker, however many retries it took: two open it.
            for cold in ("cold", "colder"):
                down = await http.post("/v1/embeddings", json={"model": MODEL, "input": cold})
                assert (down.status_code, error_of(down)) == (503, UNREACHABLE)
                assert scheduler.breaker_state == ("closed" if cold == "cold" else "open")

            calls = scheduler.stats()["upstream_calls"]
            fast = await http.post("/v1/embeddings", json={"model": MODEL, "input": "coldest"})
            assert (fast.status_code, error_of(fast)) == (503, BREAKER_OPEN)
            assert 50 <= int(fast.headers["retry-after"]) <= 60
            assert scheduler.stats()["upstream_calls"] == calls  # not even a connection attempt

            hit = await http.post(
                "/v1/embeddings", json={"model": MODEL, "input": ["warm", "warm"]}
            )
            assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT"

            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"]["breaker"] == "open"


async def test_a_gateway_started_against_a_closed_port_answers_503_and_stays_ready(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path / "cache",
        upstream={
            "base_url": closed_port_url(),
            "max_retries": 0,
            "breaker_failures": 1,
            "breaker_cooldown_s": 60.0,
        },
    )
    app = create_app(
        settings, upstream=GeminiUpstream(settings.upstream, KEY), secrets=Secrets(KEY, frozenset())
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as http,
    ):
        first = await http.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
        assert (first.status_code, error_of(first)) == (503, UNREACHABLE)
        second = await http.post("/v1/embeddings", json={"model": MODEL, "input": "b"})
        assert (second.status_code, error_of(second)) == (503, BREAKER_OPEN)
        assert 50 <= int(second.headers["retry-after"]) <= 60
        assert (await http.get("/readyz")).status_code == 200
