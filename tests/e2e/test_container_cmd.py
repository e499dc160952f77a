"""The Dockerfile's start command and environment, tested without Docker (none on these machines).

The Dockerfile is parsed; its build context is built as `pip install .` would build it; its CMD
runs with its ENV (the port moved to a free one, the VOLUME to a temp dir) and answers like the
container would, its HEALTHCHECK passes, and SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import clean_env, free_port, start

ROOT = Path(__file__).resolve().parents[2]


class Dockerfile:
    """The instructions of the final stage (and the FROM lines of all), continuation-joined."""

    def __init__(self, text: str) -> None:
        joined = re.sub(r"\\\n", " ", text)
        lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and ln[0] != "#"]
        self.instructions = [tuple(ln.split(None, 1)) for ln in lines]
        self.froms = [arg for op, arg in self.instructions if op == "FROM"]
        last = max(i for i, (op, _) in enumerate(self.instructions) if op == "FROM")
        self.final = self.instructions[last:]
        self.build = self.instructions[:last]

    def args(self, op: str, stage: list[tuple[str, ...]] | None = None) -> list[str]:
        return [arg for name, arg in (stage or self.final) if name == op]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        for line in self.args("ENV"):
            for token in shlex.split(line):
                name, _, value = token.partition("=")
                env[name] = re.sub(r"\$(\w+)", lambda m: env.get(m[1], ""), value)
        return env


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile((ROOT / "Dockerfile").read_text())


def test_the_image_is_multi_stage_slim_non_root_with_the_cache_on_a_volume(
    dockerfile: Dockerfile,
) -> None:
    assert len(dockerfile.froms) >= 2
    assert all(f.split()[0] == "python:3.11-slim" for f in dockerfile.froms)
    user = dockerfile.args("USER")[-1]
    assert user not in ("root", "0")
    env = dockerfile.env({})
    assert env["GATEWAY_SERVER_HOST"] == "0.0.0.0"
    assert json.loads(dockerfile.args("VOLUME")[0]) == [env["GATEWAY_CACHE_DIR"]]
    assert dockerfile.args("EXPOSE") == [env["GATEWAY_SERVER_PORT"]] == ["8080"]
    assert "/healthz" in dockerfile.args("HEALTHCHECK")[0]
    assert "curl" not in (ROOT / "Dockerfile").read_text()  # not in the slim image
    assert json.loads(dockerfile.args("CMD")[-1]) == ["gateway", "serve"]


def test_the_build_context_builds_the_package_as_pip_install_dot_does(
    dockerfile: Dockerfile, tmp_path: Path
) -> None:
    runs = " ".join(dockerfile.args("RUN", dockerfile.build))
    assert re.search(r"pip install \.(\s|$)", runs), runs  # exactly the README's install
    context = tmp_path / "context"
    context.mkdir()
    for line in dockerfile.args("COPY", dockerfile.build):
        *sources, _ = line.split()
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, context / source)
    # setuptools' build step is what `pip install .` runs; offline, without a wheel step.
    subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build"],
        cwd=context,
        check=True,
        capture_output=True,
    )
    built = context / "build" / "lib" / "gateway"
    for needed in ("cli/main.py", "server.py", "fake/fake_gemini.py", "data/cl100k_base.tiktoken"):
        assert (built / needed).is_file(), needed


def test_the_cmd_with_the_env_serves_passes_its_healthcheck_and_stops_on_sigterm(
    dockerfile: Dockerfile, tmp_path: Path
) -> None:
    env = dockerfile.env(clean_env())
    venv_bin = str(Path(sys.executable).parent)  # the image's /opt/gateway/bin
    env["PATH"] = env["PATH"].replace("/opt/gateway/bin", venv_bin)
    volume = tmp_path / "volume"
    assert env["GATEWAY_CACHE_DIR"] == json.loads(dockerfile.args("VOLUME")[0])[0]
    env["GATEWAY_CACHE_DIR"] = str(volume)
    port = free_port()
    env["GATEWAY_SERVER_PORT"] = str(port)
    workdir = tmp_path / "app"  # WORKDIR /app: empty, so no config.toml is read
    workdir.mkdir()
    cmd = json.loads(dockerfile.args("CMD")[-1])
    server = start(cmd, cwd=workdir, env=env, port=port, log=tmp_path / "serve.log")
    http = httpx.Client(base_url=server.base)
    try:
        # Its stderr is no TTY (docker logs): JSON lines, batched, yet there while it runs.
        server.wait_for("running cache-only", timeout=0.2 + 2)  # [log] buffer_ms plus slack
        healthcheck = dockerfile.args("HEALTHCHECK")[0].split(" CMD ", 1)[1]
        assert subprocess.run(["sh", "-c", healthcheck], env=env, timeout=10).returncode == 0
        ready = http.get("/readyz").json()
        assert ready["checks"]["upstream"] == "cache-only"  # no GEMINI_API_KEY in the env
        miss = http.post("/v1/embeddings", json={"model": "gemini-embedding-2", "input": "x"})
        assert miss.status_code == 503 and "retry-after" not in miss.headers  # retrying cannot help
        error = miss.json()["error"]
        assert (error["type"], error["code"], error["param"]) == (
            "upstream_error",
            "cache_miss",
            None,
        )
        assert "cache-only" in error["message"]
        assert http.get("/metrics").status_code == 200
        assert volume.is_dir() and any(volume.iterdir())  # the cache lives on the volume
        assert_huge_body_is_refused_unread(port)
        second = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, timeout=30)
        assert second.returncode == 2 and b"cannot listen" in second.stderr  # never shares a port
    finally:
        http.close()
        code = server.stop()
    out = server.output()
    assert code == 0, out
    assert f"0.0.0.0:{port}" in out  # bound on every interface, as a container must be
    json_lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert json_lines and all(json.loads(ln)["event"] for ln in json_lines)
    assert "gateway stopped" in out


def assert_huge_body_is_refused_unread(port: int) -> None:
    """A request announcing 1 GB gets 413 after a few bytes: the body is never read."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
            b"content-length: 1073741824\r\n\r\n" + b'{"model": "gemini'
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
