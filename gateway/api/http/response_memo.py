"""ResponseMemo: whole answers to byte-identical requests, replayed without parsing or hashing.

A stored vector never changes for its content key, so neither does the answer to a request whose
every input was served: the same body bytes on the same route give the same response bytes. The
memo keeps those answers (bounded in bytes; 0 turns it off) and the figures their replay must
still count: the log line's fields and the metrics' hits and savings.

Only small bodies are memoised: hashing a 48 MiB body took 85 ms on the event loop, and a body
over MAX_BODY_BYTES carries media whose content keys serve a repeat from the cache anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import blake3

from gateway.api.encoding.chunked import json_response
from gateway.api.http.cache_headers import CACHE_HEADER_NAMES, raw_cache_headers
from gateway.api.http.raw_response import RawJSON
from gateway.config import ModelSpec
from gateway.content.model import Content
from gateway.core.lru import ByteLRU
from gateway.observability.metrics import GatewayMetrics, ReplayFigure

Replay = Callable[[], None]
MAX_BODY_BYTES = 256 * 1024
_FIGURE_BYTES = 64  # one input's (modality, tokens, dollars) tuple, about


class Answer:
    """One memoised answer: the body, its headers, and what replaying it counts.

    Built on every answer that could be replayed, replayed far less often (a request whose
    bytes are new each time, another `user`, is never replayed): what only a replay needs, the
    raw headers, the log fields and the metrics' steps, is derived at the first replay. The
    request's Contents are not kept: their media bytes would stay pinned (and counted) as long
    as the answer, so only each input's figures are (metrics.replay_figures)."""

    __slots__ = (
        "_fields",
        "_figures",
        "_headers",
        "_inputs",
        "_metrics",
        "_replay",
        "_spec",
        "body",
        "size",
    )

    def __init__(
        self,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        spec: ModelSpec,
        contents: Sequence[Content],
        tokens: Sequence[int],
        metrics: GatewayMetrics | None,
    ) -> None:
        self.body = body
        self._headers = headers  # the answer's own, cache headers as they were then
        self._spec = spec
        self._inputs = len(contents)
        self._metrics = metrics
        figures = metrics.replay_figures(contents, tokens) if metrics is not None else []
        self._figures: list[ReplayFigure] = figures
        self._fields: dict[str, Any] | None = None
        self._replay: Replay | None = None
        # The body, headers and fields, and a few dozen bytes per input's figures, roughly.
        self.size = len(body) + 256 + _FIGURE_BYTES * len(self._figures)

    def replayed(self, log_fields: dict[str, Any]) -> RawJSON:
        """Count the answer again (log line, metrics) and return it, ready to send: in pieces
        when it is large, as the first answer was (encoding/chunked.py)."""
        fields = self._fields
        if fields is None:
            fields = self._first_replay()
        log_fields.update(fields)
        if self._replay is not None:
            self._replay()
        return json_response(self.body, raw_headers=self._headers)

    def _first_replay(self) -> dict[str, Any]:
        """Derive what a replay says: every input a hit, counted again in the metrics."""
        n = self._inputs
        headers = [h for h in self._headers if h[0] not in CACHE_HEADER_NAMES]
        self._headers = headers + raw_cache_headers(n, n)
        if self._metrics is not None:
            self._replay = self._metrics.hits_replay(self._spec, self._figures)
        self._figures = []  # the replay's steps hold what they count now
        self._fields = {"model": self._spec.id, "inputs": n, "hits": n, "misses": 0, "memo": True}
        return self._fields


def _answer_bytes(answer: Answer) -> int:
    return answer.size


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
        self.put(key, Answer(response.body, response.headers, spec, contents, tokens, metrics))

    def clear(self) -> None:
        self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)
