"""The upstream call in a worker process answers what the in-process call answers, fault by fault."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from gateway.content.model import Content, EmbedParams, Part
from gateway.errors import GatewayError, UpstreamError
from gateway.fake import FakeGemini, run_fake_in_thread
from gateway.upstream.call_worker import WORKER_NICENESS, CallWorker
from gateway.upstream.gemini import WORKER_BODY_MAX_BYTES, GeminiUpstream
from tests.conftest import make_settings

pytestmark = pytest.mark.e2e
KEY = "worker-key"
PARAMS = EmbedParams(model="gemini-embedding-2")
TEXTS = [Content.of_text(f"worker {i}") for i in range(100)]
ONE = [Content.of_text("one")]

Outcome = tuple[str, str, float | None] | bytes


async def outcome(upstream: GeminiUpstream, contents: list[Content], dims: int = 3072) -> Outcome:
    """The vectors' bytes, or the error's class, message and retry-after."""
    try:
        vectors = await upstream.embed(contents, PARAMS, dims)
    except GatewayError as exc:
        return (type(exc).__name__, exc.message, exc.retry_after)
    return vectors.tobytes()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_every_answer_and_fault_crosses_the_worker_as_the_in_process_path_reads_it(
    tmp_path: Path,
) -> None:
    fake = FakeGemini()
    with run_fake_in_thread(fake) as url:
        s = make_settings(tmp_path, upstream={"base_url": url, "timeout_s": 0.3}).upstream
        far = GeminiUpstream(s, KEY)  # a client of its own: calls go to the worker process
        client = httpx.AsyncClient(timeout=s.timeout_s)
        near = GeminiUpstream(s, KEY, http_client=client)  # the same call, in-process
        assert far.calls is not None and near.calls is None
        faults: list[tuple[str, Callable[[], None], list[Content]]] = [
            ("20 texts", lambda: None, TEXTS[:20]),
            ("429 RetryInfo", lambda: fake.fail_next(429, retry_delay="7s"), ONE),
            ("429 Retry-After", lambda: fake.fail_next(429, retry_after="3"), ONE),
            ("400", lambda: fake.fail_next(400, message="bad item"), ONE),
            ("403", lambda: fake.fail_next(403), ONE),
            ("500", lambda: fake.fail_next(500), ONE),
            ("503", lambda: fake.fail_next(503, retry_after="2"), ONE),
            ("not json", lambda: fake.malformed_next("not_json"), TEXTS[:3]),
            ("NaN", lambda: fake.malformed_next("nan"), TEXTS[:3]),
            ("short", lambda: fake.malformed_next("short_vector"), TEXTS[:3]),
            ("count", lambda: fake.malformed_next("wrong_count"), TEXTS[:3]),
        ]
        try:
            for name, arm, contents in faults:
                seen = []
                for upstream in (near, far):
                    fake.reset()
                    arm()
                    seen.append(await outcome(upstream, contents))
                    (call,) = fake.calls
                    seen.append((call.path, call.api_key, call.items))
                assert seen[0] == seen[2], name
                assert seen[1] == seen[3], name
            assert far.calls.calls == len(faults) and far.calls.starts == 1

            fake.latency_s = 0.6  # past timeout_s: httpx's timeout, in the worker
            assert await outcome(far, ONE) == await outcome(near, ONE)
            assert (await outcome(far, ONE))[0] == "UpstreamTimeout"  # type: ignore[index]
        finally:
            fake.latency_s = 0.0
            await far.aclose()
            await near.aclose()


async def test_a_refused_port_reads_the_same_through_the_worker(tmp_path: Path) -> None:
    s = make_settings(tmp_path, upstream={"base_url": closed_port_url()}).upstream
    far, near = GeminiUpstream(s, KEY), GeminiUpstream(s, KEY, http_client=httpx.AsyncClient())
    try:
        refused = await outcome(far, ONE)
        assert refused == await outcome(near, ONE)
        assert refused == ("UpstreamUnavailable", "cannot reach the upstream: ConnectError", None)
    finally:
        await far.aclose()
        await near.aclose()


async def test_a_dead_worker_fails_its_calls_and_the_next_call_starts_another(
    tmp_path: Path,
) -> None:
    fake = FakeGemini()
    with run_fake_in_thread(fake) as url:
        s = make_settings(tmp_path, upstream={"base_url": url}).upstream
        far = GeminiUpstream(s, KEY)
        assert far.calls is not None
        try:
            assert isinstance(await outcome(far, ONE), bytes)
            fake.latency_s = 1.0
            call = asyncio.create_task(far.embed(ONE, PARAMS, 3072))
            cancelled = asyncio.create_task(far.embed(TEXTS[:2], PARAMS, 3072))
            for _ in range(500):  # both calls reached the fake (on its thread): in the worker
                if len(fake.calls) >= 3:
                    break
                await asyncio.sleep(0.01)
            cancelled.cancel()  # a call given up: the worker drops it, the others go on
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            process = far.calls._process
            assert process is not None and process.is_alive() and process.pid is not None
            # it yields the cores to the serving process, whose hits must not wait behind misses
            ours = os.getpriority(os.PRIO_PROCESS, 0)
            assert os.getpriority(os.PRIO_PROCESS, process.pid) == min(19, ours + WORKER_NICENESS)
            process.kill()
            with pytest.raises(UpstreamError, match="worker died"):
                await call
            fake.latency_s = 0.0
            assert isinstance(await outcome(far, ONE), bytes)
            assert far.calls.starts == 2
        finally:
            fake.latency_s = 0.0
            await far.aclose()


async def test_a_large_media_body_is_sent_in_process_not_through_the_worker(
    tmp_path: Path,
) -> None:
    fake = FakeGemini()
    video = Part(kind="video", mime_type="video/mp4", data=bytes(WORKER_BODY_MAX_BYTES))
    with run_fake_in_thread(fake) as url:
        s = make_settings(tmp_path, upstream={"base_url": url}).upstream
        far = GeminiUpstream(s, KEY, calls=CallWorker(s.timeout_s, 2))
        try:
            vectors = await far.embed([Content(parts=(video,))], PARAMS, 3072)
            assert vectors.shape == (1, 3072) and np.isfinite(vectors).all()
            assert far.calls is not None and far.calls.starts == 0  # never started
            (call,) = fake.calls
            assert call.items[0].parts[0].data == video.data
        finally:
            await far.aclose()
