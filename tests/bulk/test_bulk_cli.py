"""`gateway bulk ...`: its progress lines, and the commands against a real `gateway serve`."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli.bulk import follow, progress
from gateway.cli.main import main
from tests.e2e.processes import serve_fake


def _batch(status: str, done: int, **meta: str) -> dict[str, Any]:
    counts = {"total": 4, "completed": done, "failed": 0}
    return {"id": "batch_1", "status": status, "request_counts": counts, "metadata": meta}


def test_follow_prints_a_plain_line_per_change_when_not_on_a_tty() -> None:
    states = iter([_batch("in_progress", 0), _batch("in_progress", 0), _batch("completed", 4)])
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=next(states)))
    out = io.StringIO()
    with httpx.Client(transport=transport, base_url="http://gw") as client:
        batch = follow(client, "batch_1", 5.0, out, sleep=lambda _: None)
    assert batch["status"] == "completed"
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[1].startswith("completed") and "lines 4/4 done" in lines[1]


def test_progress_shows_the_bar_and_both_prices() -> None:
    meta = {
        "gateway_cached": "2",
        "gateway_dollars_batch": "0.5",
        "gateway_dollars_interactive": "1",
    }
    text = progress(_batch("in_progress", 2, **meta), bar=True)
    assert "[" + "#" * 15 + "." * 15 + "]" in text
    assert "items cached 2" in text and "$0.5000 at the batch price" in text
    assert "$1.0000 interactive" in text


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("served")
    env = {"GATEWAY_CACHE_DIR": str(tmp_path / "cache"), "GATEWAY_BULK_POLL_INTERVAL_S": "0.1"}
    server = serve_fake(tmp_path, **env)
    try:
        yield server.base
    finally:
        server.stop()


@pytest.mark.e2e
def test_submit_wait_status_results_and_cancel(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"custom_id": f"r{i}", "body": {"model": "gemini-embedding-2", "input": f"text {i % 3}"}}
        for i in range(5)
    ]
    lines.append({"custom_id": "bad", "body": {"model": "nope", "input": "x"}})
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code = main(["bulk", "submit", str(source), "--wait", "--interval", "0.1", "--url", url])
    out, err = capsys.readouterr()
    assert code == 0, err
    batch_id = out.split()[0]
    assert "completed" in out and "lines 5/6 done, 1 failed" in out
    assert "deduplicated 2, submitted 3" in out
    assert main(["bulk", "status", batch_id, "--json", "--url", url]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["metadata"]["gateway_billed"] == "3"
    target, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    argv = ["bulk", "results", batch_id, "-o", str(target), "--errors", str(errors), "--url", url]
    assert main(argv) == 0
    capsys.readouterr()
    rows = [json.loads(row) for row in target.read_text().splitlines()]
    assert [row["custom_id"] for row in rows] == [f"r{i}" for i in range(5)]
    (bad,) = [json.loads(row) for row in errors.read_text().splitlines()]
    assert bad["response"]["status_code"] == 404
    assert main(["bulk", "cancel", batch_id, "--url", url]) == 1
    assert "cannot be cancelled" in capsys.readouterr().err
