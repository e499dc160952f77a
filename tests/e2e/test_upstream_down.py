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
                "breaker_failures": 3,
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

            down = await http.post("/v1/embeddings", json={"model": MODEL, "input": "cold"})
            assert down.status_code == 503
            assert "cannot reach the upstream" in down.json()["error"]["message"]
            assert scheduler.breaker_state == "open"

            calls = scheduler.stats()["upstream_calls"]
            fast = await http.post("/v1/embeddings", json={"model": MODEL, "input": "colder"})
            assert fast.status_code == 503
            assert "circuit breaker" in fast.json()["error"]["message"]
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
        assert first.status_code == 503
        second = await http.post("/v1/embeddings", json={"model": MODEL, "input": "b"})
        assert second.status_code == 503
        assert "circuit breaker" in second.json()["error"]["message"]
        assert (await http.get("/readyz")).status_code == 200
