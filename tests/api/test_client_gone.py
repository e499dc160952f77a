"""A client that leaves in the middle of a large answer still gets its one request line and its
one count in gateway_requests_total: the request may have paid upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.exceptions import LitestarException
from structlog.testing import capture_logs

from gateway.api.encoding import chunked
from gateway.fake import FakeGemini
from tests.conftest import make_app, make_settings

MODEL = "gemini-embedding-2"


class ClientGone(OSError):
    """What a server's send raises once the connection is closed."""


def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("gw", 80),
        "headers": [(b"host", b"gw"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip


def _requests_total(app: Litestar, route: str, status: str) -> float:
    value: float = app.state["services"].metrics.requests.labels(route, "POST", status).value
    return value


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/embeddings", "/v1/embeddings"),  # the lean lane
        ("/v1/embeddings/", "/v1/embeddings"),  # litestar's own route (a trailing slash)
    ],
)
async def test_a_client_gone_mid_answer_leaves_one_line_and_one_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, route: str
) -> None:
    monkeypatch.setattr(chunked, "PIECE_BYTES", 4096)  # a small answer goes out in pieces
    app = make_app(make_settings(tmp_path / "cache"), FakeGemini())
    body = json.dumps({"model": MODEL, "input": ["gone one", "gone two"]}).encode()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if any(m["type"] == "http.response.body" for m in sent):
            raise ClientGone("the client closed the connection")
        sent.append(message)

    async with app.lifespan():
        before = _requests_total(app, route, "200")
        with (
            capture_logs() as logs,
            pytest.raises((ClientGone, LitestarException)),
        ):  # litestar wraps it
            await app(_scope(path, body), receive, send)  # type: ignore[arg-type]
        after = _requests_total(app, route, "200")
    start, piece = sent
    assert start["status"] == 200 and piece["more_body"]  # it was cut after the first piece
    lines = [entry for entry in logs if entry.get("event") == "request"]
    assert len(lines) == 1
    assert lines[0]["status"] == 200 and lines[0]["client_gone"] is True
    assert lines[0]["inputs"] == 2 and lines[0]["misses"] == 2  # the usual fields are kept
    assert after - before == 1
