"""Failures FakeGemini has been told to produce; safe to arm from any thread."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from gateway.fake.records import FakeItem

MalformedKind = Literal["not_json", "nan", "short_vector", "wrong_count", "zero_vector"]
Poison = Callable[[FakeItem], bool]


@dataclass(frozen=True, slots=True)
class InjectedFailure:
    """One error answer: status, optional RetryInfo delay ("1s") and Retry-After header."""

    status: int
    retry_delay: str | None = None
    retry_after: str | None = None
    message: str | None = None


class FaultPlan:
    """Queues of pending failures and malformed answers, plus the poison predicates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: deque[InjectedFailure] = deque()
        self._malformed: deque[MalformedKind] = deque()
        self._poisons: list[Poison] = []

    def fail_next(self, failure: InjectedFailure, times: int) -> None:
        if not 400 <= failure.status <= 599:
            raise ValueError(f"fail_next wants an HTTP error status, got {failure.status}")
        with self._lock:
            self._failures.extend([failure] * times)

    def malformed_next(self, kind: MalformedKind, times: int) -> None:
        if kind not in get_args(MalformedKind):
            raise ValueError(f"unknown malformed kind {kind!r}")
        with self._lock:
            self._malformed.extend([kind] * times)

    def poison(self, predicate: Poison) -> None:
        with self._lock:
            self._poisons.append(predicate)

    def unpoison(self) -> None:
        with self._lock:
            self._poisons.clear()

    def take_failure(self) -> InjectedFailure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def take_malformed(self) -> MalformedKind | None:
        with self._lock:
            return self._malformed.popleft() if self._malformed else None

    def is_poisoned(self, items: list[FakeItem]) -> bool:
        with self._lock:
            poisons = list(self._poisons)
        return any(poison(item) for poison in poisons for item in items)

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._malformed.clear()
            self._poisons.clear()
