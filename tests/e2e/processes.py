"""Real `gateway` server processes for e2e tests: started in their own session, always reaped.

granian runs the app in a worker child of the `gateway serve` process. Signalling only the parent
with SIGKILL would leave that worker alive (and serving), so every stop goes to the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

GATEWAY = Path(sys.executable).with_name("gateway")


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any gateway, Gemini or Google settings, plus `extra`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "GEMINI_", "GOOGLE_"))
    }
    env.update(extra)
    return env


class Server:
    """A started server process; `base` is its URL, `log` the file its output goes to."""

    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc = proc
        self.base = base
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 10) -> str:
        """The output once `text` appears in it `count` times; fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while (out := self.output()).count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} x{count} not in the output in {timeout:g} s:\n{out}"
                )
            time.sleep(0.01)
        return out

    def workers(self) -> set[int]:
        """The pids of the server's worker processes: granian forks them from this process."""
        return children(self.proc.pid)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM to the group (a graceful shutdown); SIGKILL if it does not end in time."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL to every process of the server, as a crash or an OOM kill would."""
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.proc.pid, sig)


def start(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    port: int,
    log: Path,
    timeout: float = 30,
) -> Server:
    """Start `command` (which must listen on `port`) and wait until /healthz answers."""
    with log.open("wb") as out:  # a file, not a pipe: a pipe nobody reads would stall the server
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.base, timeout=1) as probe:  # one client: each costs ~20 ms
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited early:\n{server.output()}")
            try:
                if probe.get("/healthz").status_code == 200:
                    return server
            except httpx.TransportError:
                time.sleep(0.02)
    server.kill()
    raise AssertionError(f"the server was not healthy in {timeout:g} s:\n{server.output()}")


def children(pid: int) -> set[int]:
    """The live child processes of `pid`, from /proc (zombies are dead, not children here)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]  # the name in () may hold spaces
        if int(ppid) == pid and state != "Z":
            found.add(int(entry.name))
    return found


def serve_fake(tmp_path: Path, *args: str, log_name: str = "serve.log", **env: str) -> Server:
    """`gateway serve --fake-upstream [args]` on a free port, run in `tmp_path`, with `env` set."""
    port = free_port()
    command = [str(GATEWAY), "serve", "--fake-upstream", "--port", str(port), *args]
    return start(command, cwd=tmp_path, env=clean_env(**env), port=port, log=tmp_path / log_name)
