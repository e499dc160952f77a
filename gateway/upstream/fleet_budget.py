"""FleetBudget: the per-model requests/min and tokens/min limits as one budget for a fleet.

GCRA on the shared server, in one script, on the server's clock (replicas' clocks never meet):
each bucket is a "theoretical arrival time"; a call of cost c moves it by c x 60 s / limit and
may leave once that is at most a minute ahead of now (a minute's burst, as the local buckets).
A 429 with RetryInfo seen by one replica is a hold key every replica's next call waits out.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.cache.shared import SharedTier

# KEYS: requests bucket, tokens bucket, hold. ARGV: ms per request, ms per token, request cost,
# token cost, longest acceptable wait (ms). Returns {taken (0|1), wait ms}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst = 60000
local wait = math.max(0, redis.call('PTTL', KEYS[3]))
local tats = {}
for i = 1, 2 do
  local per = tonumber(ARGV[i])
  if per > 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
    local new = tat + per * tonumber(ARGV[i + 2])
    tats[i] = new
    wait = math.max(wait, new - burst - now)
  end
end
if wait > tonumber(ARGV[5]) then return {0, wait} end
for i = 1, 2 do
  if tats[i] then
    redis.call('SET', KEYS[i], tats[i], 'PX', math.max(1, math.ceil(tats[i] - now)))
  end
end
return {1, wait}
"""


class FleetBudget:
    """The SharedBudget of gateway.upstream.ratelimit, on the shared tier."""

    def __init__(self, tier: SharedTier, requests_per_minute: int, tokens_per_minute: int) -> None:
        self.tier = tier
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._script = tier.client.register_script(_RESERVE)
        self._holds: set[asyncio.Task[Any]] = set()

    def _keys(self, model: str) -> list[bytes]:
        base = self.tier.prefix + b"r:" + model.encode()
        return [base + b":req", base + b":tok", base + b":hold"]

    async def reserve(self, model: str, tokens: int, max_wait_s: float) -> float | None:
        """Seconds to wait after taking room; minus the wait when refused; None = go local."""
        rpm, tpm = self.requests_per_minute, self.tokens_per_minute
        args = [
            60_000 / rpm if rpm > 0 else 0,
            60_000 / tpm if tpm > 0 else 0,
            1,
            min(tokens, tpm) if tpm > 0 else 0,  # a call above the bucket waits for a full one
            int(max_wait_s * 1000),
        ]
        answer = await self.tier.call(
            "rate", lambda: self._script(keys=self._keys(model), args=args)
        )
        if answer is None:
            return None
        if not int(answer[0]):
            return -max(1.0, float(answer[1])) / 1000.0
        return float(answer[1]) / 1000.0

    def hold(self, model: str, seconds: float) -> None:
        """Every replica holds `model` for `seconds` (set in the background, bounded)."""
        key = self._keys(model)[2]
        ms = max(1, int(seconds * 1000))

        async def put() -> None:
            await self.tier.call("hold", lambda: self._hold(key, ms))

        task = asyncio.get_running_loop().create_task(put())
        self._holds.add(task)
        task.add_done_callback(self._holds.discard)

    async def _hold(self, key: bytes, ms: int) -> None:
        """Keep the longer of two holds."""
        current = await self.tier.client.pttl(key)
        if current is None or int(current) < ms:
            await self.tier.client.set(key, b"1", px=ms)
