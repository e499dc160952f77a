"""Leases: single-flight for misses across replicas, on the shared tier.

Before a miss goes upstream its replica takes `<prefix>l:<hex key>` with SET NX PX and a random
token, in the same pipeline as an MGET of the values (a key stored a moment ago is a hit, not a
fetch). A holder that is done (stored or failed) deletes its leases with a compare-and-delete
script, which also publishes the keys on `<prefix>done`, so waiters wake at once; waiters poll
every `poll_ms` as well, in case a message is lost. A holder that dies stops renewing nothing:
its leases expire after `lease_ms` and a waiter takes them over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.cache.shared import FAILURES, SharedTier, decode_value
from gateway.cache.store import Record

log = structlog.get_logger("gateway.cache.lease")

# KEYS: the lease keys; ARGV[1]: the token, ARGV[2]: the channel, ARGV[3]: the message.
_RELEASE = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return n
"""


# KEYS: the lease keys; ARGV[1]: the token, ARGV[2]: the lease in ms. Only our leases move.
_RENEW = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    n = n + 1
  end
end
return n
"""


@dataclass(slots=True)
class Claim:
    """What one acquire found: keys now ours, keys another replica holds, values already there."""

    token: bytes
    owned: list[bytes] = field(default_factory=list)
    foreign: list[bytes] = field(default_factory=list)
    stored: dict[bytes, Record] = field(default_factory=dict)


class Leases:
    """Acquire, release and wait for content-key leases; None from a call means "go local"."""

    def __init__(
        self,
        tier: SharedTier,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tier = tier
        self.lease_ms = int(tier.settings.lease_ms)
        self.poll_s = tier.settings.poll_ms / 1000.0
        self.channel = tier.prefix + b"done"
        self._clock = clock
        self._release = tier.client.register_script(_RELEASE)
        self._renew = tier.client.register_script(_RENEW)
        self._wakers: dict[bytes, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self.acquired = 0

    @property
    def waits(self) -> int:
        """Keys awaited because another replica held them."""
        return self.tier.lease_waits

    @property
    def takeovers(self) -> int:
        """Keys whose holder was gone (failed or dead) and were taken here."""
        return self.tier.lease_takeovers

    def lease_key(self, key: bytes) -> bytes:
        return self.tier.prefix + b"l:" + key.hex().encode()

    @property
    def usable(self) -> bool:
        return self.tier.usable

    async def acquire(self, keys: list[bytes]) -> Claim | None:
        """Try a lease on each key and read its value, in one round trip; None if the tier fails."""
        token = os.urandom(16).hex().encode()
        names = [self.tier.key(k) for k in keys]

        async def run() -> list[Any]:
            pipe = self.tier.client.pipeline(transaction=False)
            for key in keys:
                pipe.set(self.lease_key(key), token, nx=True, px=self.lease_ms)
            pipe.mget(names)
            return await pipe.execute()

        answer = await self.tier.call("lease", run)
        if answer is None:
            return None
        claim = Claim(token)
        values = answer[-1]
        for key, got, value in zip(keys, answer[:-1], values, strict=True):
            record = decode_value(value)
            if record is not None:
                claim.stored[key] = record
                if got:
                    claim.owned.append(key)  # ours, but there is nothing to fetch: released below
            elif got:
                claim.owned.append(key)
            else:
                claim.foreign.append(key)
        self.acquired += len(claim.owned)
        return claim

    async def release(self, keys: list[bytes], token: bytes) -> None:
        """Delete our leases on `keys` (only ours) and wake every waiter for them."""
        if not keys:
            return
        message = b",".join(k.hex().encode() for k in keys)
        names = [self.lease_key(k) for k in keys]
        await self.tier.call(
            "release", lambda: self._release(keys=names, args=[token, self.channel, message])
        )

    async def hold(self, keys: list[bytes], token: bytes) -> None:
        """Keep our leases on `keys` alive while their fetch runs (cancel it when done): a
        fetch slower than lease_ms (retries, backoff) is not taken over by a waiter."""
        names = [self.lease_key(k) for k in keys]
        while True:
            await asyncio.sleep(self.lease_ms / 3000.0)
            await self.tier.call(
                "renew", lambda: self._renew(keys=names, args=[token, self.lease_ms])
            )

    async def wait(
        self, keys: list[bytes], deadline: float
    ) -> tuple[dict[bytes, Record], list[bytes]]:
        """Wait for another replica's fetch of `keys`: the values that arrived, and the keys
        left free (its holder released without storing, died, or the tier failed): take those."""
        self.tier.lease_waits += len(keys)
        pending = list(keys)
        found: dict[bytes, Record] = {}
        event = asyncio.Event()
        for key in pending:
            self._wakers.setdefault(key, set()).add(event)
        try:
            self._listen()
            while pending:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return found, []
                event.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self.poll_s, remaining)):
                        await event.wait()
                state = await self._look(pending)
                if state is None:
                    return found, pending  # the tier failed: the caller goes local
                arrived, free = state
                found.update(arrived)
                self.tier.lease_takeovers += len(free)
                if free:
                    return found, [k for k in pending if k in free]
                pending = [k for k in pending if k not in arrived]
            return found, []
        finally:
            for key in keys:
                wakers = self._wakers.get(key)
                if wakers is not None:
                    wakers.discard(event)
                    if not wakers:
                        del self._wakers[key]

    async def _look(self, keys: list[bytes]) -> tuple[dict[bytes, Record], set[bytes]] | None:
        """The values there now, and the keys with neither a value nor a lease."""

        async def run() -> list[Any]:
            pipe = self.tier.client.pipeline(transaction=False)
            pipe.mget([self.tier.key(k) for k in keys])
            for key in keys:
                pipe.exists(self.lease_key(key))
            return await pipe.execute()

        answer = await self.tier.call("lease-wait", run)
        if answer is None:
            return None
        arrived: dict[bytes, Record] = {}
        free: set[bytes] = set()
        for key, value, leased in zip(keys, answer[0], answer[1:], strict=True):
            record = decode_value(value)
            if record is not None:
                arrived[key] = record
            elif not leased:
                free.add(key)
        return arrived, free

    # -- pub/sub: one subscription per process, started by the first waiter -------------------

    def _listen(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._run_listener(), name="shared-leases")

    async def _run_listener(self) -> None:
        pubsub = self.tier.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            while self._wakers:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and isinstance(message.get("data"), bytes):
                    self._wake(message["data"])
        except FAILURES as exc:  # waiters keep polling; the next waiter subscribes again
            log.info("lease notifications lost; waiters poll", error=type(exc).__name__)
        finally:
            with contextlib.suppress(*FAILURES):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _wake(self, data: bytes) -> None:
        for hexkey in data.split(b","):
            try:
                key = bytes.fromhex(hexkey.decode())
            except ValueError:
                continue
            for event in self._wakers.get(key, ()):
                event.set()

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, *FAILURES):
                await self._listener
