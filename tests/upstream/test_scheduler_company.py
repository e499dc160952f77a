"""A partial batch waits for company while a call of its lane is in flight, on virtual time.

The upstream here is gated: each call waits until the test lets it return; the first takes
CALL_S of virtual time. Nothing is measured in wall time; a held batch can leave only when the
virtual clock passes the lane's typical call time (at most 250 ms), or nothing is in flight
any more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gateway.content.model import Content, EmbedParams
from gateway.upstream.outcome import Fetched, Settled
from gateway.upstream.scheduler import Scheduler
from tests.upstream.test_scheduler import PARAMS, fast_settings, keyed, until
from tests.upstream.virtual_time import VirtualTime

CALL_S = 40.0  # a slow lane: its hold is the 250 ms cap, a wide margin over the test's steps
HOLD_S = 0.25
DIMS = 8


class GatedUpstream:
    """Records each call's size; a call returns when the test opens its gate. The first takes
    CALL_S of virtual time (the lane learns its typical call), the others none."""

    def __init__(self, time: VirtualTime) -> None:
        self.time = time
        self.sizes: list[int] = []
        self.gates: list[asyncio.Event] = []
        self.open_all = False
        self.takes = [CALL_S]  # virtual seconds of the calls to come; later ones take none

    async def embed(
        self, contents: Sequence[Content], params: EmbedParams, dims: int
    ) -> NDArray[np.float32]:
        self.sizes.append(len(contents))
        gate = asyncio.Event()
        self.gates.append(gate)
        if not self.open_all:
            await gate.wait()
        self.time.advance(self.takes.pop(0) if self.takes else 0.0)
        return np.full((len(contents), dims), 0.5, dtype=np.float32)

    def open(self) -> None:
        """Every call in flight returns, and every later one at once."""
        self.open_all = True
        for gate in self.gates:
            gate.set()

    async def aclose(self) -> None:
        return None


def scheduler_on(
    tmp_path: Path, *, hold: bool = True, hold_max_ms: float = 250.0
) -> tuple[Scheduler, GatedUpstream]:
    time = VirtualTime()
    upstream = GatedUpstream(time)
    settings = fast_settings(tmp_path, max_wait_ms=1.0, hold_max_ms=hold_max_ms)
    scheduler = Scheduler(
        upstream, settings.upstream, clock=time, sleep=time.sleep, hold_for_company=hold
    )
    return scheduler, upstream


def miss(scheduler: Scheduler, text: str) -> asyncio.Task[dict[bytes, Settled]]:
    return asyncio.create_task(scheduler.embed(keyed(text), PARAMS, DIMS))


async def one_call_in_flight(scheduler: Scheduler, upstream: GatedUpstream) -> None:
    """A first call teaches the lane its call time; a second stays in flight."""
    upstream.open_all = True
    await miss(scheduler, "teacher")
    upstream.open_all = False
    miss(scheduler, "in flight")
    await until(lambda: len(upstream.sizes) == 2)


async def settle(rounds: int = 50) -> None:
    """Let every task that can run, run (no time passes: the virtual clock stands still)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_a_partial_batch_waits_for_company_while_a_call_is_in_flight(
    tmp_path: Path,
) -> None:
    scheduler, upstream = scheduler_on(tmp_path)
    await one_call_in_flight(scheduler, upstream)
    first = miss(scheduler, "held 0")
    await asyncio.sleep(0.03)  # more than the hold in real time: held, the virtual clock stood
    assert upstream.sizes == [1, 1]
    others = [miss(scheduler, f"held {i}") for i in range(1, 5)]
    await settle()
    upstream.time.advance(HOLD_S * 0.5)
    others.append(miss(scheduler, "held 5"))  # an arrival makes the lane look again: not yet
    await settle()
    assert upstream.sizes == [1, 1]
    upstream.time.advance(HOLD_S * 0.6)  # the hold (a typical call, at most 250 ms) is over
    others.append(miss(scheduler, "held 6"))
    await until(lambda: len(upstream.sizes) == 3)
    assert upstream.sizes == [1, 1, 7]  # the call in flight is still out; the batch went anyway
    upstream.open()
    for task in (first, *others):
        assert all(isinstance(o, Fetched) for o in (await task).values())
    await scheduler.aclose()


async def test_hold_max_ms_caps_the_hold_and_zero_turns_it_off(tmp_path: Path) -> None:
    """A deployment that wants a miss never to wait for company sets hold_max_ms = 0: a partial
    batch then leaves after max_wait_ms, as with nothing in flight; 200 caps it at 200 ms."""
    scheduler, upstream = scheduler_on(tmp_path / "off", hold_max_ms=0.0)
    await one_call_in_flight(scheduler, upstream)
    alone = miss(scheduler, "not held")
    await settle()  # the batch waits on its timer, armed before the test's own below
    # That timer is max_wait_ms (1 ms) unheld, 250 ms if it were held: timers fire in deadline
    # order, so after this 30 ms one (and the tasks it lets run) an unheld batch has gone,
    # however slow the machine, and a held one has not.
    await asyncio.sleep(0.03)
    await settle()
    assert upstream.sizes == [1, 1, 1]  # the call in flight is still out
    upstream.open()
    await alone
    await scheduler.aclose()

    scheduler, upstream = scheduler_on(tmp_path / "capped", hold_max_ms=200.0)
    await one_call_in_flight(scheduler, upstream)
    held = [miss(scheduler, "held 0")]
    await settle()
    upstream.time.advance(0.18)  # under the cap (the lane's typical call is 40 s): still held
    held.append(miss(scheduler, "held 1"))
    await settle()
    assert upstream.sizes == [1, 1]
    upstream.time.advance(0.022)  # past the cap
    held.append(miss(scheduler, "held 2"))  # an arrival makes the lane look again
    await settle(200)  # no real time passes: a batch still held would wait it out
    assert upstream.sizes == [1, 1, 3]
    upstream.open()
    await asyncio.gather(*held)
    await scheduler.aclose()


async def test_the_hold_is_a_typical_call_not_a_quarter_of_one(tmp_path: Path) -> None:
    """Over sockets, 100 clients' requests reach the loop spread over more than a quarter of a
    50 ms call: a quarter-call hold let most partial batches go alone (27-42 calls per 300)."""
    scheduler, upstream = scheduler_on(tmp_path)
    upstream.takes = [0.2]  # the lane's typical call: 200 ms, under the 250 ms cap
    await one_call_in_flight(scheduler, upstream)
    held = [miss(scheduler, "held 0")]
    await settle()
    upstream.time.advance(0.08)  # past a quarter call (50 ms), short of the whole (200 ms)
    held.append(miss(scheduler, "held 1"))  # an arrival makes the lane look again
    await settle()
    assert upstream.sizes == [1, 1]
    upstream.time.advance(0.07)  # 150 ms: still held
    held.append(miss(scheduler, "held 2"))
    await settle()
    assert upstream.sizes == [1, 1]
    upstream.time.advance(0.06)  # 210 ms: the hold is over
    held.append(miss(scheduler, "held 3"))
    await until(lambda: len(upstream.sizes) == 3)
    assert upstream.sizes == [1, 1, 4]
    upstream.open()
    await asyncio.gather(*held)
    await scheduler.aclose()


async def test_when_the_last_call_in_flight_returns_a_held_batch_goes(tmp_path: Path) -> None:
    scheduler, upstream = scheduler_on(tmp_path)
    await one_call_in_flight(scheduler, upstream)
    held = [miss(scheduler, f"held {i}") for i in range(3)]
    await settle()
    assert upstream.sizes == [1, 1]
    upstream.gates[1].set()  # nothing in flight any more: no company worth waiting for
    await until(lambda: len(upstream.sizes) == 3)
    assert upstream.sizes == [1, 1, 3]
    upstream.gates[2].set()
    await asyncio.gather(*held)
    await scheduler.aclose()


async def test_with_nothing_in_flight_a_miss_is_not_held(tmp_path: Path) -> None:
    scheduler, upstream = scheduler_on(tmp_path)
    upstream.open_all = True
    await miss(scheduler, "teacher")
    await miss(scheduler, "alone")  # would hang if held: nothing in flight can release it
    assert upstream.sizes == [1, 1]
    await scheduler.aclose()


async def test_the_baseline_sends_partial_batches_at_max_wait_even_with_calls_in_flight(
    tmp_path: Path,
) -> None:
    scheduler, upstream = scheduler_on(tmp_path, hold=False)
    await one_call_in_flight(scheduler, upstream)
    miss(scheduler, "not held")
    await until(lambda: len(upstream.sizes) == 3)  # after max_wait_ms, not the 250 ms hold
    assert upstream.sizes == [1, 1, 1]  # the call in flight is still out
    upstream.open()
    await scheduler.aclose()
