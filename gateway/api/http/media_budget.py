"""MediaBudget: a semaphore in bytes over the memory large requests use, across all requests.

Twelve requests with a 20 MiB part each at once peaked at 1.13 GB RSS. A request whose body is
over SMALL_BODY_BYTES reserves what it will really cost, its body times AMPLIFICATION (at most the
whole [media] max_inflight_bytes), before a byte of the body is read, and holds it until its
answer is sent (api/http/limits.py): the body, the decoded JSON strings, the decoded media and the
upstream call's copies all live inside that window. One that does not fit waits in line up to
[media] inflight_wait_s, then gets 503 server_busy with retry-after. Media larger than the whole
budget could never fit: 413. Waiters are served first come, first served, so a large request is
not starved by a stream of small ones. Smaller bodies never touch the budget (a cache hit costs
microseconds); media fetched from URLs are reserved by size once fetched (`run`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from gateway.errors import Overloaded, PayloadTooLarge

T = TypeVar("T")

SMALL_BODY_BYTES = 256 * 1024
# A request's peak memory over its body's size, measured with bench/bench_memory.py: one 20 MiB
# part in base64 JSON (a 27 MiB body) alone peaks at ~200 MiB online (~45 MiB of it the in-process
# fake's copies), ~90 MiB cache-only. The gateway's copies: the body, the decoded JSON string, the
# decoded bytes, google-genai's base64 string, its JSON text and that text's bytes.
AMPLIFICATION = 6


class MediaBudget:
    """Bytes of media in work now, at most `capacity` (0 or less: no bound)."""

    def __init__(self, capacity: int, wait_s: float) -> None:
        self.capacity = capacity
        self.wait_s = wait_s
        self.in_use = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        """Requests in line for bytes."""
        return len(self._waiters)

    def body_cost(self, body_bytes: int) -> int:
        """What a body of `body_bytes` holds: its measured peak, at most the whole budget."""
        return min(self.capacity, body_bytes * AMPLIFICATION)

    async def reserve_body(self, body_bytes: int, held: int) -> int:
        """Grow this request's hold from `held` to the cost of a body of `body_bytes`; the new hold.

        413 at once when the body's media alone (base64 is 4/3 of its bytes) exceed the budget.
        """
        media = body_bytes // 4 * 3
        if media > self.capacity:
            raise PayloadTooLarge(
                f"this request's body of {body_bytes:,} bytes carries up to {media:,} bytes of "
                f"media, more than the {self.capacity:,} this gateway works on at once ([media] "
                "max_inflight_bytes)"
            )
        cost = self.body_cost(body_bytes)
        if cost > held:
            await self.acquire(cost - held)
            return cost
        return held

    async def run(
        self, size: int, work: Callable[[], T], *, off_loop: bool, param: str | None = None
    ) -> T:
        """`work()` with `size` bytes held, on a worker thread when `off_loop`.

        The bytes are released when `work` ends, also when it fails; a caller cancelled while the
        thread runs leaves the bytes held until the thread is done with them.
        """
        if size <= 0 or self.capacity <= 0:
            return await asyncio.to_thread(work) if off_loop else work()
        await self.acquire(size, param=param)
        if not off_loop:
            try:
                return work()
            finally:
                self.release(size)
        job = asyncio.ensure_future(asyncio.to_thread(work))

        def done(finished: asyncio.Future[T]) -> None:
            self.release(size)
            if not finished.cancelled():
                finished.exception()  # retrieved: a caller that left must not leave a warning

        job.add_done_callback(done)
        return await asyncio.shield(job)

    async def acquire(self, size: int, *, param: str | None = None) -> None:
        """Reserve `size` bytes: at once, after waiting in line, or Overloaded / PayloadTooLarge."""
        if size > self.capacity:
            raise PayloadTooLarge(
                f"the media of this request decode to about {size:,} bytes, more than the "
                f"{self.capacity:,} this gateway works on at once ([media] max_inflight_bytes)",
                param=param,
            )
        if not self._waiters and self.in_use + size <= self.capacity:
            self.in_use += size
            return
        if self.wait_s <= 0:
            raise self._busy(size)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(self.wait_s):
                await waiter
        except BaseException as exc:
            granted = waiter.done() and not waiter.cancelled()
            if not granted:
                waiter.cancel()
                if entry in self._waiters:  # _wake drops a waiter cancelled before this ran
                    self._waiters.remove(entry)
                self._wake()  # a large request leaving the head may let smaller ones in
            if isinstance(exc, TimeoutError):
                if granted:
                    return  # granted as the deadline passed: the bytes are this request's
                raise self._busy(size) from None
            if granted:
                self.release(size)
            raise

    def release(self, size: int) -> None:
        """Give back bytes reserved by `acquire` and let the requests in line that now fit in."""
        self.in_use -= size
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            size, waiter = self._waiters[0]
            if waiter.done():  # cancelled, its request not yet back to remove it
                self._waiters.popleft()
                continue
            if self.in_use + size > self.capacity:
                return
            self._waiters.popleft()
            self.in_use += size
            waiter.set_result(None)

    def _busy(self, size: int) -> Overloaded:
        return Overloaded(
            f"the gateway holds {self.in_use:,} bytes for other large requests; this "
            f"request's {size:,} did not fit within {self.wait_s:g} s ([media] "
            "max_inflight_bytes); retry later",
            retry_after=max(1.0, self.wait_s),
        )
