"""RWLock: readers share, a writer is alone, a waiting writer holds new readers off, and every
way out of a `with` (an exception included) releases. Threads meet on events; every wait is
bounded so a broken lock fails the test instead of hanging it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from gateway.vectorstore.rwlock import RWLock

WAIT = 2.0  # the longest any step may take when the lock works
ABSENT = 0.05  # how long something that must not happen is given to happen


class Holder:
    """A thread that takes one side of the lock, says so, and holds it until released."""

    def __init__(self, side: Callable[[], AbstractContextManager[None]], log: list[str], name: str):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None
        self._side, self._log, self._name = side, log, name
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self._side():
                self._log.append(self._name)
                self.entered.set()
                assert self.release.wait(WAIT * 2), "never released"
        except BaseException as exc:  # surfaced by finish()
            self.error = exc

    def finish(self) -> None:
        self.release.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the thread is stuck in the lock"
        if self.error is not None:
            raise self.error


@pytest.fixture
def lock() -> RWLock:
    return RWLock()


def wait_for_waiting_writers(lock: RWLock, n: int) -> None:
    """Until `n` writers are queued inside write() (its own count; nothing signals it)."""
    deadline = time.monotonic() + WAIT
    while lock._writers_waiting != n:
        assert time.monotonic() < deadline, "the writer never started waiting"
        time.sleep(0.001)


def test_readers_hold_the_lock_together(lock: RWLock) -> None:
    both_inside = threading.Barrier(3, timeout=WAIT)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with lock.read():
                both_inside.wait()  # breaks (and fails) unless both readers are in at once
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    both_inside.wait()
    for t in threads:
        t.join(WAIT)
    assert not errors and not any(t.is_alive() for t in threads)


@pytest.mark.parametrize("second", ["read", "write"])
def test_a_writer_excludes_readers_and_writers(lock: RWLock, second: str) -> None:
    log: list[str] = []
    writer = Holder(lock.write, log, "writer")
    assert writer.entered.wait(WAIT)
    other = Holder(getattr(lock, second), log, second)
    assert not other.entered.wait(ABSENT)
    writer.finish()
    assert other.entered.wait(WAIT)
    other.finish()
    assert log == ["writer", second]


def test_a_writer_waits_for_the_readers_inside(lock: RWLock) -> None:
    log: list[str] = []
    readers = [Holder(lock.read, log, f"reader{i}") for i in range(2)]
    assert all(r.entered.wait(WAIT) for r in readers)
    writer = Holder(lock.write, log, "writer")
    assert not writer.entered.wait(ABSENT)
    readers[0].finish()
    assert not writer.entered.wait(ABSENT)  # one reader is still inside
    readers[1].finish()
    assert writer.entered.wait(WAIT)
    writer.finish()


def test_a_waiting_writer_goes_before_readers_that_came_after_it(lock: RWLock) -> None:
    """No writer starvation: a steady stream of searches cannot keep an index change out."""
    log: list[str] = []
    first = Holder(lock.read, log, "first reader")
    assert first.entered.wait(WAIT)
    writer = Holder(lock.write, log, "writer")
    wait_for_waiting_writers(lock, 1)
    late = Holder(lock.read, log, "late reader")
    assert not late.entered.wait(ABSENT)  # the lock is shared, but a writer is queued
    first.finish()
    assert writer.entered.wait(WAIT)
    assert not late.entered.is_set()
    writer.finish()
    assert late.entered.wait(WAIT)
    late.finish()
    assert log == ["first reader", "writer", "late reader"]


@pytest.mark.parametrize("side", ["read", "write"])
def test_an_exception_inside_releases_the_lock(lock: RWLock, side: str) -> None:
    with pytest.raises(ValueError, match="boom"), getattr(lock, side)():
        raise ValueError("boom")
    log: list[str] = []
    writer = Holder(lock.write, log, "writer")  # needs the lock wholly free
    assert writer.entered.wait(WAIT)
    writer.finish()
    reader = Holder(lock.read, log, "reader")
    assert reader.entered.wait(WAIT)
    reader.finish()


def test_a_writer_that_gives_up_waiting_lets_readers_in(lock: RWLock) -> None:
    """An exception while queued (KeyboardInterrupt in the main thread, say) leaves no phantom
    waiting writer behind to hold every later reader off."""
    log: list[str] = []
    reader = Holder(lock.read, log, "reader")
    assert reader.entered.wait(WAIT)
    real_wait = lock._cond.wait
    raised = threading.Event()

    def interrupted_wait(timeout: float | None = None) -> bool:
        if threading.current_thread().name == "giving-up-writer" and not raised.is_set():
            raised.set()
            raise KeyboardInterrupt
        return real_wait(timeout)

    lock._cond.wait = interrupted_wait  # type: ignore[method-assign]
    outcome: list[BaseException] = []

    def give_up() -> None:
        try:
            with lock.write():
                pass
        except BaseException as exc:
            outcome.append(exc)

    quitter = threading.Thread(target=give_up, name="giving-up-writer", daemon=True)
    quitter.start()
    quitter.join(WAIT)
    assert raised.is_set() and isinstance(outcome[0], KeyboardInterrupt)
    reader.finish()
    later = Holder(lock.read, log, "later reader")
    assert later.entered.wait(WAIT), "readers are held off by a writer that is gone"
    later.finish()
