"""Outcomes as data: requests coalesced on one failing miss never share an exception object."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.content.model import Content
from gateway.errors import UpstreamRejected, UpstreamServerError
from gateway.fake import FakeGemini
from gateway.upstream.outcome import Failure
from tests.upstream.test_scheduler import fast_settings, live_gateway

MODEL = "gemini-embedding-2"


async def test_coalesced_requests_on_one_failing_miss_each_raise_their_own_exception(
    tmp_path: Path, fake: FakeGemini
) -> None:
    fake.latency_s = 0.05  # the second request joins the first's item while it is in flight
    fake.fail_next(500, times=10)
    settings = fast_settings(tmp_path, max_retries=0, breaker_failures=0)
    async with live_gateway(settings, fake) as gateway:
        embedder = gateway.services.embedder
        spec = settings.models[0]
        params = embedder.params(spec)
        shared = Content.of_text("shared and failing")
        first, second = await asyncio.gather(
            embedder.embed([shared], spec, params),
            embedder.embed([Content.of_text("own"), shared], spec, params),
            return_exceptions=True,
        )
        assert gateway.scheduler.coalesced == 1
    assert isinstance(first, UpstreamServerError) and isinstance(second, UpstreamServerError)
    assert first is not second
    assert first.__traceback__ is not None and second.__traceback__ is not None
    assert first.__traceback__ is not second.__traceback__
    assert first.param is None and second.param is None
    assert fake.items_received == 0


async def test_coalesced_requests_on_a_rejected_item_each_name_only_their_own_index(
    tmp_path: Path, fake: FakeGemini
) -> None:
    fake.latency_s = 0.05
    fake.poison(lambda item: item.parts[0].text == "bad")
    async with live_gateway(fast_settings(tmp_path), fake) as gateway:
        first, second, third = await asyncio.gather(
            gateway.embed(model=MODEL, input=["bad"]),
            gateway.embed(model=MODEL, input=["fine", "also fine", "bad"]),
            gateway.embed(model=MODEL, input=["bad", "fine"]),
        )
    assert [r.status_code for r in (first, second, third)] == [400, 400, 400]
    bodies = [r.json()["error"] for r in (first, second, third)]
    assert [b["param"] for b in bodies] == ["input[0]", "input[2]", "input[0]"]
    assert "input[2]" not in bodies[0]["message"] and "input[2]" not in bodies[2]["message"]
    assert "input[0]" not in bodies[1]["message"]
    assert "input[1]" not in bodies[2]["message"]


def test_a_failure_record_builds_a_new_exception_each_time() -> None:
    record = Failure.of(UpstreamRejected("upstream 400: bad", failed=(3,), param="input[3]"))
    one, two = record.error(), record.error()
    assert one is not two
    assert isinstance(one, UpstreamRejected) and one.failed == () and one.param is None
    assert (one.message, one.http_status, one.code) == ("upstream 400: bad", 400, record.code)
