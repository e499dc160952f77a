"""Batched JSON log lines: every line reaches the file, in order, by drain or by size."""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import termios
import threading
import time
from pathlib import Path

from gateway.observability.logs import LineSink


def test_lines_are_written_in_order_on_drain_and_not_before(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        sink = LineSink(fd, delay_s=3600)
        for i in range(3):
            sink.write(f'{{"n":{i}}}\n'.encode())
            sink.flush()  # what structlog calls after each line: no syscall
        assert path.read_bytes() == b""
        sink.drain()
        assert path.read_bytes() == b'{"n":0}\n{"n":1}\n{"n":2}\n'
    finally:
        os.close(fd)


def test_a_full_batch_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        sink = LineSink(fd, delay_s=3600, max_bytes=64)
        sink.write(b"x" * 40 + b"\n")
        assert path.read_bytes() == b""
        sink.write(b"y" * 40 + b"\n")
        assert path.read_bytes() == b"x" * 40 + b"\n" + b"y" * 40 + b"\n"
    finally:
        os.close(fd)


def test_the_thread_writes_within_its_delay(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        sink = LineSink(fd, delay_s=0.01)
        sink.write(b"line\n")
        for _ in range(500):
            if path.read_bytes():
                break
            time.sleep(0.01)
        assert path.read_bytes() == b"line\n"
    finally:
        os.close(fd)


def read_all(fd: int, into: bytearray) -> None:
    """Read a pipe until every writer has closed it."""
    while chunk := os.read(fd, 1 << 16):
        into += chunk


def test_a_line_written_while_a_batch_is_stuck_on_the_fd_does_not_wait() -> None:
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    sink = LineSink(w, delay_s=3600, max_bytes=1 << 30)
    line = b"x" * 99 + b"\n"
    for _ in range(100):  # 10 KB: more than the pipe holds until someone reads
        sink.write(line)
    drainer = threading.Thread(target=sink.drain, daemon=True)
    drainer.start()
    out = bytearray()
    reader = threading.Thread(target=read_all, args=(r, out), daemon=True)
    try:
        deadline = time.monotonic() + 5
        while pipe_bytes(r) < 4096:  # the drain is now blocked in os.write
            assert time.monotonic() < deadline
            time.sleep(0.001)
        late = threading.Thread(target=sink.write, args=(b"late\n",), daemon=True)
        late.start()
        late.join(timeout=1)
        assert not late.is_alive(), "write() waited for a drain stuck on a full pipe"
    finally:
        reader.start()  # unblock the drain (and, before the fix, the late write)
        drainer.join(timeout=5)
        sink.drain()
        os.close(w)
        reader.join(timeout=5)
        os.close(r)
    assert bytes(out) == line * 100 + b"late\n"


def pipe_bytes(fd: int) -> int:
    buf = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return int.from_bytes(buf, sys.byteorder)


def test_concurrent_writers_and_drains_keep_every_line_whole_and_in_order() -> None:
    r, w = os.pipe()
    sink = LineSink(w, delay_s=0.001, max_bytes=4096)  # the thread and writers all drain
    out = bytearray()
    reader = threading.Thread(target=read_all, args=(r, out), daemon=True)
    reader.start()

    def writer(t: int) -> None:
        for n in range(300):
            sink.write(f"{t}:{n}:".encode() + b"y" * ((t * 997 + n * 31) % 5000) + b"\n")

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink.drain()
    os.close(w)
    reader.join(timeout=10)
    os.close(r)
    seen: dict[int, list[int]] = {t: [] for t in range(6)}
    for text in bytes(out).split(b"\n")[:-1]:
        t, n, pad = text.split(b":")
        assert pad == b"y" * ((int(t) * 997 + int(n) * 31) % 5000)  # never a torn line
        seen[int(t)].append(int(n))
    assert seen == {t: list(range(300)) for t in range(6)}


def test_a_forked_child_writes_its_own_lines_and_never_the_parents(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        sink = LineSink(fd, delay_s=0.2)
        sink.write(b"parent, before the fork\n")  # still in the batch when the child is born
        pid = os.fork()
        if pid == 0:  # the child: as a granian worker, it logs and expects the line to leave
            code = 3
            try:
                sink.write(b"child\n")
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    if b"child\n" in path.read_bytes():
                        code = 0
                        break
                    time.sleep(0.01)
            finally:
                os._exit(code)
        deadline = time.monotonic() + 10
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError("the forked child hung on the sink")
            time.sleep(0.01)
        assert os.waitstatus_to_exitcode(done[1]) == 0, "the child's line never reached the file"
        sink.drain()
        assert sorted(path.read_bytes().splitlines()) == [b"child", b"parent, before the fork"]
    finally:
        os.close(fd)
