"""The servers under test, each a child process on 127.0.0.1, started and stopped by the bench."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.outputs import ROOT, SCRATCH

BIN = Path(sys.executable).parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (closed again: small race, fine here)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A child process serving HTTP on `port`; its output goes to a log file under .scratch."""

    name: str
    cmd: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (auth)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/v1/models", timeout_s: float = 120.0) -> None:
        """Start the process and wait until `ready_path` answers (any status below 500)."""
        SCRATCH.mkdir(parents=True, exist_ok=True)
        self.log_path = SCRATCH / f"{self.name}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.cmd, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            try:
                reply = httpx.get(self.url + ready_path, headers=self.headers, timeout=2.0)
                if reply.status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} not ready in {timeout_s:.0f}s; see {self.log_path}")

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process in the group we started (workers included)."""
        if self.proc is None:
            return 0.0
        pgid = os.getpgid(self.proc.pid)
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ... utime stime
                ticks += int(fields[11]) + int(fields[12])
        return ticks / _CLK_TCK

    def wait_idle(self, timeout_s: float = 120.0, window_s: float = 0.5) -> float:
        """Wait until the server burns < 5% CPU: requests wrk abandoned at its deadline are done.

        A slow server keeps working on the requests in flight when wrk stops; without this,
        that backlog would be charged to whichever system is timed next. Returns seconds waited.
        """
        start = time.monotonic()
        before = self.cpu_seconds()
        while time.monotonic() - start < timeout_s:
            time.sleep(window_s)
            now = self.cpu_seconds()
            if now - before < 0.05 * window_s:
                break
            before = now
        return time.monotonic() - start

    def stop(self) -> None:
        """SIGTERM the process group we started (granian/uvicorn workers included), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def gateway_server(upstream_url: str, cache_dir: Path) -> Server:
    """`gateway serve` (1 granian worker, default config) calling FakeGemini over a real socket."""
    port = free_port()
    cmd = [str(BIN / "gateway"), "serve", "--port", str(port), "--cache-dir", str(cache_dir)]
    env = {"GATEWAY_UPSTREAM_BASE_URL": upstream_url, "GEMINI_API_KEY": "bench-dummy-key"}
    # cwd .scratch: no ./config.toml is picked up, so the run uses the documented defaults.
    return Server("gateway", cmd, port, env=env, cwd=SCRATCH)


def bare_server() -> Server:
    """The bare litestar app on granian, one worker, the same loop choice as the gateway."""
    port = free_port()
    cmd = [
        str(BIN / "granian"), "--interface", "asgi", "--factory", "--workers", "1",
        "--loop", "auto", "--no-access-log", "--host", "127.0.0.1", "--port", str(port),
        "bench.bare_app:create_app",
    ]  # fmt: skip
    return Server("bare-litestar", cmd, port)
