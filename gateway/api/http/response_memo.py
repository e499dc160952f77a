"""ResponseMemo: whole answers to byte-identical requests, replayed without parsing or hashing.

A stored vector never changes for its content key, so neither does the answer to a request whose
every input was served: the same body bytes on the same route give the same response bytes. The
memo keeps those answers (bounded in bytes; 0 turns it off) and the figures their replay must
still count: the log line's fields and the metrics' hits and savings.

Only small bodies are memoised: hashing a 48 MiB body took 85 ms on the event loop, and a body
over MAX_BODY_BYTES carries media whose content keys serve a repeat from the cache anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import blake3

from gateway.api.http.cache_headers import CACHE_HEADER_NAMES, raw_cache_headers
from gateway.api.http.raw_response import RawJSON
from gateway.config import ModelSpec
from gateway.content.model import Content
from gateway.core.lru import ByteLRU
from gateway.observability.metrics import GatewayMetrics

Replay = Callable[[], None]
MAX_BODY_BYTES = 256 * 1024


class Answer:
    """One memoised answer: the body, its headers as raw pairs, and what replaying it counts."""

    __slots__ = ("body", "fields", "headers", "replay")

    def __init__(
        self,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        fields: Mapping[str, Any],
        replay: Replay | None,
    ) -> None:
        self.body = body
        self.headers = headers
        self.fields = dict(fields)
        self.replay = replay

    def replayed(self, log_fields: dict[str, Any]) -> RawJSON:
        """Count the answer again (log line, metrics) and return it, ready to send."""
        log_fields.update(self.fields)
        if self.replay is not None:
            self.replay()
        return RawJSON(self.body, raw_headers=self.headers)


def _answer_bytes(answer: Answer) -> int:
    return len(answer.body) + 256  # the body plus its headers and fields, roughly


class ResponseMemo:
    """An LRU of route + blake3(body) -> Answer."""

    def __init__(
        self,
        budget_bytes: int,
        max_body_bytes: int = MAX_BODY_BYTES,
        *,
        generation: Callable[[], int] = lambda: 0,
    ) -> None:
        # entry_cap: one huge batch must not flush everything else
        self._answers: ByteLRU[bytes, Answer] = ByteLRU(
            budget_bytes, _answer_bytes, entry_cap=budget_bytes // 8
        )
        self.max_body_bytes = max_body_bytes
        # The cache's generation moves when entries are pruned or rewritten (here or by the
        # admin CLI): answers built from before then must not be replayed.
        self._generation = generation
        self._filled_at = generation()

    @property
    def enabled(self) -> bool:
        return self._answers.enabled

    @staticmethod
    def key(route: bytes, body: bytes) -> bytes:
        """The memo key of a request body on a route family."""
        return blake3.blake3(route + b"\0" + body).digest()

    def key_for(self, route: bytes, body: bytes) -> bytes:
        """The memo key of a body this memo would keep; b"" when off or the body is too large."""
        if not self._answers.enabled or len(body) > self.max_body_bytes:
            return b""
        return self.key(route, body)

    def _current(self) -> None:
        now = self._generation()
        if now != self._filled_at:
            self._answers.clear()
            self._filled_at = now

    def get(self, key: bytes) -> Answer | None:
        self._current()
        return self._answers.get(key)

    def put(self, key: bytes, answer: Answer) -> None:
        self._current()
        self._answers.put(key, answer)

    def remember(
        self,
        key: bytes,
        response: RawJSON,
        spec: ModelSpec,
        contents: Sequence[Content],
        tokens: Sequence[int],
        metrics: GatewayMetrics | None,
    ) -> None:
        """Keep an answer whose every input was served: a replay of it is all hits."""
        n = len(contents)
        headers = [h for h in response.headers if h[0] not in CACHE_HEADER_NAMES]
        headers += raw_cache_headers(n, n)
        replay = metrics.hits_replay(spec, contents, tokens) if metrics is not None else None
        fields = {"model": spec.id, "inputs": n, "hits": n, "misses": 0, "memo": True}
        self.put(key, Answer(response.body, headers, fields, replay))

    def clear(self) -> None:
        self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)
