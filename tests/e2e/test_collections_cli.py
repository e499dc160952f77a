"""`gateway collections ...` against a gateway on a real 127.0.0.1 socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.main import main
from tests.e2e.processes import free_port, serve_fake


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`gateway serve --fake-upstream` in its own process (its log lines stay out of stdout);
    one for the module: each test leaves no collection behind."""
    tmp_path = tmp_path_factory.mktemp("served")
    server = serve_fake(tmp_path, GATEWAY_CACHE_DIR=str(tmp_path / "cache"))
    try:
        yield server.base
    finally:
        server.stop()


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
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, _, err = run(capsys, "list", "--url", dead)
    assert code == 1 and "gateway serve" in err
    code, _, err = run(capsys, "add", "docs", "--jsonl", "/nonexistent/items.jsonl", "--url", url)
    assert code == 1 and err.count("\n") == 1 and "cannot read /nonexistent/items.jsonl" in err


def test_without_url_the_cli_finds_the_gateway_by_port_flag_env_or_config(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = url.rsplit(":", 1)[1]
    dead = str(free_port())
    monkeypatch.chdir(tmp_path)  # no ./config.toml here
    monkeypatch.delenv("GATEWAY_URL", raising=False)
    monkeypatch.setenv("GATEWAY_SERVER_PORT", dead)
    code, out, err = run(capsys, "list", "--port", port)  # the flag beats the environment
    assert (code, out.strip(), err) == (0, "(no collections)", "")
    code, out, err = run(capsys, "list", "--host", "127.0.0.1", "--port", port)
    assert code == 0 and out.strip() == "(no collections)"
    code, _, err = run(capsys, "list")  # GATEWAY_SERVER_PORT, where nothing listens
    assert code == 1 and f"no gateway answering at http://127.0.0.1:{dead}" in err
    monkeypatch.setenv("GATEWAY_SERVER_PORT", port)
    code, out, _ = run(capsys, "list")
    assert code == 0 and out.strip() == "(no collections)"
    monkeypatch.delenv("GATEWAY_SERVER_PORT")
    (tmp_path / "gw.toml").write_text(f"[server]\nport = {port}\n")
    code, out, _ = run(capsys, "list", "--config", str(tmp_path / "gw.toml"))
    assert code == 0 and out.strip() == "(no collections)"
    monkeypatch.setenv("GATEWAY_URL", f"http://127.0.0.1:{dead}")
    code, out, _ = run(capsys, "list", "--port", port)  # a flag beats GATEWAY_URL too
    assert code == 0 and out.strip() == "(no collections)"
