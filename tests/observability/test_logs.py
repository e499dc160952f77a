"""Batched JSON log lines: every line reaches the file, in order, by drain or by size."""

from __future__ import annotations

import os
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
