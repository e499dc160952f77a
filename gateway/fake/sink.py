"""BodySink: an upstream on a loopback socket that reads each body into one reused buffer.

For memory measurements (tests/upstream/test_media_copies.py, bench/media_copies.py): it
allocates nothing per body, so tracemalloc in the gateway's process sees only the gateway's
own copies. It hashes each body (sha256) and answers one 3072-dim vector.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class BodySink:
    """Serves on a thread from `start()` until `close()`; `bodies` holds each body's sha256."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        answer = json.dumps({"embeddings": [{"values": [0.5] * 3072}]}).encode()
        self._reply = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n" % len(answer)
        ) + answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, name="body-sink", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        buffer = memoryview(bytearray(64 * 1024))
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(4096)
                head, rest = head.split(b"\r\n\r\n", 1)
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                digest = hashlib.sha256(rest)
                left = length - len(rest)
                while left > 0:
                    n = conn.recv_into(buffer, min(left, len(buffer)))
                    digest.update(buffer[:n])
                    left -= n
                self.bodies.append(digest.hexdigest())
                conn.sendall(self._reply)

    def close(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
        self._listener.close()
        if self._thread.is_alive():
            self._thread.join(5)


@contextmanager
def body_sink() -> Iterator[BodySink]:
    """A started BodySink, closed at the end of the block."""
    sink = BodySink()
    sink.start()
    try:
        yield sink
    finally:
        sink.close()
