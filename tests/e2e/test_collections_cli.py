"""`gateway collections ...` against a gateway on a real 127.0.0.1 socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.cli import main

GATEWAY = Path(sys.executable).with_name("gateway")


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """`gateway serve --fake-upstream` in its own process (its log lines stay out of stdout)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "GEMINI_", "GOOGLE_"))
    }
    env["GATEWAY_CACHE_DIR"] = str(tmp_path / "cache")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(GATEWAY), "serve", "--fake-upstream", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["collections", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_add_search_remove_and_delete(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "create", "notes", "--dimensions", "256", "--dtype", "i8", "--url", url
    )
    assert code == 0 and "notes" in out and "i8" in out
    code, out, _ = run(
        capsys, "add", "notes", "how do I reset my password", "--id", "pw",
        "--metadata", '{"lang": "en"}', "--url", url,
    )  # fmt: skip
    assert code == 0 and "added 1" in out
    jsonl = tmp_path / "items.jsonl"
    lines = [
        {"id": f"n{i}", "input": f"unrelated note number {i} about gardening"} for i in range(150)
    ]
    jsonl.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    code, out, _ = run(capsys, "add", "notes", "--jsonl", str(jsonl), "--url", url)
    assert code == 0 and "added 150" in out and "151 items" in out
    code, out, _ = run(
        capsys, "search", "notes", "How can I reset my password?", "-k", "3", "--url", url
    )
    first = out.splitlines()[0].split()
    assert code == 0 and first[1] == "pw" and 0.7 < float(first[0]) < 1.0
    code, out, _ = run(
        capsys, "search", "notes", "password", "--filter", '{"lang": "de"}', "--url", url
    )
    assert code == 0 and out.strip() == "(no results)"
    code, out, _ = run(capsys, "list", "--json", "--url", url)
    assert code == 0 and json.loads(out)["data"][0]["count"] == 151
    code, out, _ = run(capsys, "remove", "notes", "pw", "n0", "--url", url)
    assert code == 0 and "deleted 2" in out
    code, out, _ = run(capsys, "delete", "notes", "--url", url)
    assert code == 0
    code, out, _ = run(capsys, "list", "--url", url)
    assert out.strip() == "(no collections)"


def test_errors_are_one_line_on_stderr_and_exit_1(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "search", "missing", "x", "--url", url)
    assert code == 1 and "404" in err and "missing" in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, _, err = run(capsys, "list", "--url", dead)
    assert code == 1 and "gateway serve" in err
