"""A gateway with bulk jobs on FakeGemini, both on one manual clock: polls never wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from openai.types import Batch

from gateway.app import create_app
from gateway.bulk.service import BulkService
from gateway.config import Secrets, Settings
from gateway.fake import FakeGemini
from gateway.upstream.gemini import GeminiUpstream
from tests.conftest import UPSTREAM_KEY, make_settings


class ManualClock:
    """Wall time for the runner and the fake; `sleep` moves it on (or holds while `paused`)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.paused = False
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        while self.paused:  # noqa: ASYNC110  # set from the test's loop, read on the app's
            await asyncio.sleep(0.001)
        self.now += seconds
        await asyncio.sleep(0)


class BulkGateway:
    def __init__(self, client: AsyncTestClient[Litestar], fake: FakeGemini, clock: ManualClock):
        self.http = client
        self.fake = fake
        self.clock = clock
        self.openai = openai.AsyncOpenAI(
            base_url=f"{client.base_url}/v1", api_key="sk-x", http_client=client, max_retries=0
        )

    @property
    def bulk(self) -> BulkService:
        app: Litestar = self.http.app  # type: ignore[assignment]
        service: BulkService = app.state["bulk"]
        return service

    async def submit(self, lines: list[dict[str, Any]]) -> str:
        data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        file = await self.openai.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await self.openai.batches.create(
            input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h"
        )
        return batch.id

    async def finished(self, batch_id: str) -> Batch:
        """The batch once it ended; the app runs on the test client's own loop, so look."""
        for _ in range(2000):
            batch = await self.openai.batches.retrieve(batch_id)
            if batch.status in ("completed", "failed", "expired", "cancelled"):
                return batch
            await asyncio.sleep(0.002)
        raise AssertionError(f"{batch_id} still {batch.status}")

    async def lines(self, file_id: str | None) -> list[dict[str, Any]]:
        if file_id is None:
            return []
        content = await self.openai.files.content(file_id)
        return [orjson.loads(line) for line in content.content.splitlines()]


def bulk_app(settings: Settings, fake: FakeGemini, clock: ManualClock) -> Litestar:
    upstream = GeminiUpstream(
        settings.upstream, UPSTREAM_KEY, http_client=fake.async_httpx_client()
    )
    app = create_app(
        settings,
        upstream=upstream,
        secrets=Secrets(UPSTREAM_KEY, frozenset()),
        bulk_http=fake.async_httpx_client(),
    )
    service: BulkService = app.state["bulk"]
    service.runner.clock, service.runner.sleep = clock, clock.sleep
    return app


def line(custom_id: str, inputs: Any = None, **body: Any) -> dict[str, Any]:
    body = {
        "model": "gemini-embedding-2",
        **({"input": inputs} if inputs is not None else {}),
        **body,
    }
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bulk_fake(clock: ManualClock) -> FakeGemini:
    fake = FakeGemini()
    fake.batch.clock = clock
    fake.batch.completion_delay_s = 90.0
    return fake


@pytest.fixture
def bulk_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "cache", bulk={"poll_interval_s": 30.0})


@asynccontextmanager
async def running(
    settings: Settings, fake: FakeGemini, clock: ManualClock
) -> AsyncIterator[BulkGateway]:
    """A gateway on `settings`' cache dir: open two in turn on one dir to restart it."""
    async with AsyncTestClient(bulk_app(settings, fake, clock)) as client:
        yield BulkGateway(client, fake, clock)


@pytest.fixture
async def gw(
    bulk_settings: Settings, bulk_fake: FakeGemini, clock: ManualClock
) -> AsyncIterator[BulkGateway]:
    async with running(bulk_settings, bulk_fake, clock) as gateway:
        yield gateway
