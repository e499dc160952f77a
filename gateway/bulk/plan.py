"""Planning a job: every line parsed and keyed, every key looked up, unique misses written out.

Streamed both ways: the input is read a chunk of lines at a time; what the later phases need goes
to files in the job's directory (plan.jsonl: per valid line its keys and view; requests-<i>.jsonl:
the Google requests of the unique misses of one upstream model; seen.sqlite3: the custom_ids and
the unique misses with their size and tokens). Nothing grows in memory with the job's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec

from gateway.bulk.lines import Parsed, custom_id_of, dollars, parse_line
from gateway.bulk.output import error_line, google_request
from gateway.bulk.seen import Seen
from gateway.bulk.store import GoogleBatchRecord, JobRecord
from gateway.cache.store import VectorCache
from gateway.config import Settings
from gateway.content.model import Content, estimate_tokens
from gateway.embedder import Embedder
from gateway.errors import GatewayError, InvalidRequest

_CHUNK = 256
SEEN = "seen.sqlite3"
_encode = msgspec.json.Encoder().encode


class PlanLine(msgspec.Struct, array_like=True):
    """A valid line as the assembly needs it; `offset` finds its raw bytes for a fallback."""

    n: int
    offset: int
    custom_id: str
    model: str
    upstream: str
    dims: int
    dtype: str
    encoding: str
    keys: list[str]


@dataclass(slots=True)
class _Group:
    index: int
    requests: IO[bytes]
    items: int = 0
    bytes: int = 0


@dataclass(slots=True)
class Planner:
    """Writes a job's plan; `run` returns one GoogleBatchRecord per upstream model with misses."""

    job: JobRecord
    work: Path
    settings: Settings
    cache: VectorCache
    embedder: Embedder
    # The misses of jobs still fetching theirs: a key one of them sends is not sent again.
    others: dict[str, Seen] = field(default_factory=dict)
    _seen: Seen | None = None
    _groups: dict[str, _Group] = field(default_factory=dict)

    async def run(self, source: Path) -> list[GoogleBatchRecord]:
        self._seen = Seen(self.work / SEEN, fresh=True)
        try:
            return await self._run(source)
        finally:
            self._seen.close()
            for other in self.others.values():
                other.close()
            for group in self._groups.values():
                group.requests.close()

    async def _run(self, source: Path) -> list[GoogleBatchRecord]:
        self.job.usage = type(self.job.usage)()
        self.job.counts.total = self.job.counts.failed = 0
        with (
            source.open("rb") as lines,
            (self.work / "plan.jsonl").open("wb") as plan,
            (self.work / "errors.jsonl").open("wb") as errors,
        ):
            chunk: list[tuple[int, int, bytes]] = []
            offset = 0
            for n, raw in enumerate(lines, start=1):
                if n > self.settings.bulk.max_lines:
                    raise InvalidRequest(
                        f"the input file has more than {self.settings.bulk.max_lines:,} lines"
                        " ([bulk] max_lines)",
                        param="input_file_id",
                    )
                if raw.strip():
                    chunk.append((n, offset, raw))
                offset += len(raw)
                if len(chunk) >= _CHUNK:
                    await self._chunk(chunk, plan, errors)
                    chunk = []
            if chunk:
                await self._chunk(chunk, plan, errors)
        if self.job.counts.total == 0:
            raise InvalidRequest("the input file has no request lines", param="input_file_id")
        return [
            GoogleBatchRecord(
                model=model, display_name=f"gw-{self.job.id}-{g.index}", items=g.items
            )
            for model, g in self._groups.items()
        ]

    async def _chunk(
        self, chunk: list[tuple[int, int, bytes]], plan: IO[bytes], errors: IO[bytes]
    ) -> None:
        parsed: list[tuple[int, int, Parsed]] = []
        for n, offset, raw in chunk:
            self.job.counts.total += 1
            try:
                line = await parse_line(raw, self.settings, self.embedder)
                if not self.seen.first_id(line.custom_id):
                    raise InvalidRequest(
                        f"`custom_id` {line.custom_id!r} is used by an earlier line",
                        param="custom_id",
                    )
            except GatewayError as exc:
                self.job.counts.failed += 1
                errors.write(error_line(self.job.id, n, custom_id_of(raw), exc))
                continue
            parsed.append((n, offset, line))
        unique = {k for _, _, line in parsed for k in line.keys}
        found = self.cache.get_hot(unique)
        if len(found) < len(unique):
            found = await self.cache.get_many(unique, remember=False)  # a scan: keep the hot set
        usage, pricing = self.job.usage, self.settings.pricing
        for n, offset, line in parsed:
            for key, content in zip(line.keys, line.contents, strict=True):
                usage.inputs += 1
                price = dollars(content, pricing)
                tokens = estimate_tokens(content)
                usage.dollars_naive += price
                usage.tokens_all += tokens
                if key in found:
                    usage.cached += 1
                elif (other := self._fetching(key)) is not None:
                    usage.shared += 1
                    if other not in self.job.waits_for:
                        self.job.waits_for.append(other)
                elif not self.seen.first_miss(key, line.params.dims or line.spec.dims, tokens):
                    usage.deduplicated += 1
                else:
                    usage.billed += 1
                    usage.tokens_billed += tokens
                    usage.dollars_interactive += price
                    self._write_miss(line, key, content, tokens)
            record = PlanLine(
                n, offset, line.custom_id, line.spec.id, line.params.model, line.dims,
                line.dtype, line.encoding, [k.hex() for k in line.keys],
            )  # fmt: skip
            plan.write(_encode(record) + b"\n")
        usage.dollars_batch = usage.dollars_interactive * self.settings.bulk.batch_price_share
        self.seen.commit()

    def _fetching(self, key: bytes) -> str | None:
        """The running job that already sends `key` to Google, if one does."""
        for job_id, other in self.others.items():
            if other.has_miss(key):
                return job_id
        return None

    @property
    def seen(self) -> Seen:
        assert self._seen is not None, "only while run() runs"
        return self._seen

    def _write_miss(self, line: Parsed, key: bytes, content: Content, tokens: int) -> None:
        group = self._groups.get(line.params.model)
        if group is None:
            index = len(self._groups)
            group = _Group(
                index,
                (self.work / f"requests-{index}.jsonl").open("wb"),
            )
            self._groups[line.params.model] = group
        fetched = line.params.dims or line.spec.dims
        request = google_request(content, line.params, fetched)
        row = _encode({"key": key.hex(), "request": request}) + b"\n"
        group.requests.write(row)
        group.items += 1
        group.bytes += len(row)
