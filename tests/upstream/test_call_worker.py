"""The upstream call in a worker process answers what the in-process call answers, fault by fault."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.content.model import Content, EmbedParams, Part
from gateway.errors import GatewayError, UpstreamError
from gateway.fake import FakeGemini, run_fake_in_thread
from gateway.upstream import call_worker
from gateway.upstream.call_worker import WORKER_NICENESS, CallWorker
from gateway.upstream.decode import INVALID_VALUES
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
        # 5 s: the fake runs on a thread of this busy process, and a loaded machine once took
        # over 0.3 s to answer 20 texts; the timeout is checked below with clients of its own
        s = make_settings(tmp_path, upstream={"base_url": url, "timeout_s": 5.0}).upstream
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
            # a google.rpc.Status over 64 KiB: still parsed whole (RetryInfo, its message)
            ("429 long", lambda: fake.fail_next(429, retry_delay="7s", message="q " * 40_000), ONE),
            ("not json", lambda: fake.malformed_next("not_json"), TEXTS[:3]),
            ("NaN", lambda: fake.malformed_next("nan"), TEXTS[:3]),
            ("short", lambda: fake.malformed_next("short_vector"), TEXTS[:3]),
            ("count", lambda: fake.malformed_next("wrong_count"), TEXTS[:3]),
            # checked where the answer is decoded: in the worker for `far`
            ("zeros", lambda: fake.malformed_next("zero_vector"), TEXTS[:3]),
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
                if name == "zeros":  # ResilientUpstream no longer checks values for this path
                    assert seen[2] == ("UpstreamError", INVALID_VALUES, None)
            assert far.calls.calls == len(faults) and far.calls.starts == 1
        finally:
            await far.aclose()
            await near.aclose()
            await client.aclose()  # handed in: near leaves it open
        quick = make_settings(tmp_path, upstream={"base_url": url, "timeout_s": 0.3}).upstream
        far = GeminiUpstream(quick, KEY)
        client = httpx.AsyncClient(timeout=quick.timeout_s)
        near = GeminiUpstream(quick, KEY, http_client=client)
        try:
            fake.latency_s = 0.6  # past timeout_s: httpx's timeout, in the worker
            assert await outcome(far, ONE) == await outcome(near, ONE)
            assert (await outcome(far, ONE))[0] == "UpstreamTimeout"  # type: ignore[index]
        finally:
            fake.latency_s = 0.0
            await far.aclose()
            await near.aclose()
            await client.aclose()


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
    # parts under the streaming size that together make a body over WORKER_BODY_MAX_BYTES
    images = [
        Content(parts=(Part(kind="image", mime_type="image/png", data=bytes([i]) * 900_000),))
        for i in range(5)
    ]
    with run_fake_in_thread(fake) as url:
        s = make_settings(tmp_path, upstream={"base_url": url}).upstream
        far = GeminiUpstream(s, KEY, calls=CallWorker(s.timeout_s, 2))
        try:
            vectors = await far.embed([Content(parts=(video,))], PARAMS, 3072)
            assert vectors.shape == (1, 3072) and np.isfinite(vectors).all()
            assert far.calls is not None and far.calls.starts == 0  # never started
            (call,) = fake.calls
            assert call.items[0].parts[0].data == video.data
            fake.reset()
            vectors = await far.embed(images, PARAMS, 3072)  # not streamed, still too big
            assert vectors.shape == (5, 3072) and far.calls.starts == 0
            (call,) = fake.calls
            assert [item.parts[0].data for item in call.items] == [c.parts[0].data for c in images]
        finally:
            await far.aclose()


def held_start(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """The worker's start, held in its thread until the test releases it: (entered, release)."""
    entered, release = threading.Event(), threading.Event()
    start = call_worker._start_hiding_main

    def held(process: Any) -> None:
        entered.set()
        release.wait(10)
        start(process)

    monkeypatch.setattr(call_worker, "_start_hiding_main", held)
    return entered, release


def workers_alive() -> list[Any]:
    return [p for p in multiprocessing.active_children() if p.name == "gateway-upstream-calls"]


async def reaped() -> None:
    """Until no call worker is alive: a killed one is gone once the OS has reaped it (a loaded
    machine once took longer than the close itself)."""
    for _ in range(500):
        if not workers_alive():
            return
        await asyncio.sleep(0.01)
    assert not workers_alive()


async def test_a_call_cancelled_while_the_worker_starts_leaves_no_worker_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeGemini()
    entered, release = held_start(monkeypatch)
    main = sys.modules["__main__"]
    with run_fake_in_thread(fake) as url:
        s = make_settings(tmp_path, upstream={"base_url": url}).upstream
        far = GeminiUpstream(s, KEY)
        assert far.calls is not None
        try:
            first = asyncio.create_task(far.embed(ONE, PARAMS, 3072))
            await asyncio.to_thread(entered.wait, 10)
            first.cancel()  # the client went away while the worker was starting
            with pytest.raises(asyncio.CancelledError):
                await first
            release.set()
            for _ in range(500):  # the start finishes in its thread; what it started is dropped
                if not workers_alive() and sys.modules["__main__"] is main:
                    break
                await asyncio.sleep(0.01)
            assert not workers_alive() and sys.modules["__main__"] is main
            assert far.calls.starts == 0
            monkeypatch.undo()
            assert isinstance(await outcome(far, ONE), bytes)  # the next call starts one
            assert far.calls.starts == 1 and len(workers_alive()) == 1
        finally:
            release.set()
            await far.aclose()
    await reaped()


async def test_a_close_while_the_worker_starts_throws_that_worker_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = held_start(monkeypatch)
    s = make_settings(tmp_path, upstream={"base_url": closed_port_url()}).upstream
    far = GeminiUpstream(s, KEY)
    assert far.calls is not None
    call = asyncio.create_task(far.calls.call("http://x", {}, b"{}", 1, 8))
    await asyncio.to_thread(entered.wait, 10)
    far.calls.close()  # shutdown during the first miss
    release.set()
    with pytest.raises(UpstreamError, match="closed while it started"):
        await call
    await reaped()
    assert far.calls.starts == 0
    await far.aclose()
