"""A long fuzz of the media walkers, run by hand (not collected by pytest):

    python -m tests.media.fuzz_media --count 300000 --seed 1 [--out /tmp/media-fuzz]

Mutates every sample of tests/media/mutations.py and calls media_part on each result. Prints each
distinct exception other than a 4xx GatewayError (saving the input under --out) and the slowest
inputs by CPU time; exits 1 when anything escaped.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import random
import sys
import time
import traceback
from pathlib import Path

from gateway.config import MediaSettings
from gateway.errors import GatewayError
from gateway.media import media_part
from tests.media.mutations import mutate, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/media-fuzz"))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    settings = MediaSettings()
    bases = list(samples().items())
    escaped: dict[tuple[str, str], int] = {}
    slowest: list[tuple[float, str, int]] = []
    refused = 0
    clock = time.monotonic()
    for n in range(args.count):
        name, sample = bases[n % len(bases)]
        data = mutate(sample, rng)
        started = time.thread_time_ns()
        try:
            media_part(data, None, param="p", settings=settings)
        except GatewayError as exc:
            refused += exc.http_status < 500
            if exc.http_status >= 500:
                _report(escaped, exc, data, name, args.out)
        except Exception as exc:  # what the fuzz is for: anything else is a defect
            _report(escaped, exc, data, name, args.out)
        spent = (time.thread_time_ns() - started) / 1e9
        heapq.heappush(slowest, (spent, name, len(data)))
        if len(slowest) > 5:
            heapq.heappop(slowest)
    wall = time.monotonic() - clock
    print(f"{args.count:,} mutations in {wall:.0f} s; {refused:,} refused with a 4xx")
    for spent, name, size in sorted(slowest, reverse=True):
        print(f"  slowest: {spent * 1000:.1f} ms CPU, {name}, {size:,} bytes")
    print(f"{sum(escaped.values()):,} escaped, {len(escaped)} distinct")
    return 1 if escaped else 0


def _report(
    escaped: dict[tuple[str, str], int], exc: BaseException, data: bytes, name: str, out: Path
) -> None:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno}"
    key = (type(exc).__name__, where)
    escaped[key] = escaped.get(key, 0) + 1
    if escaped[key] == 1:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{hashlib.sha256(data).hexdigest()[:16]}.bin"
        path.write_bytes(data)
        print(f"{key[0]} at {where} from {name}: {exc!s:.200} -> {path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
