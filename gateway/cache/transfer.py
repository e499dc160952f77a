"""Cache export and import: a portable, documented directory that moves a warm cache.

Export format (a directory, `version` 1):

    manifest.json        {"format": "gemini-embedding-gateway/cache-export", "version": 1,
                          "key_version": "gw-key-v1", "exported_at": ISO-8601, "entries": N,
                          "shards": [{"file": "vectors-00000.npy", "dims": 3072, "rows": n,
                                      "sha256": hex of the .npy file,
                                      "keys": [64-hex content keys], "models": [...],
                                      "created": [unix seconds], "tokens": [...]}, ...]}
    vectors-00000.npy    float32 little-endian, shape (rows, dims): row i belongs to keys[i]

Keys are opaque (blake3 of content and parameters, see content.py), so a vector is only ever found
again by a gateway with the same `key_version`. Any numpy can read the shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gateway.cache.admin import Progress, iso_time, problem, scan
from gateway.cache.store import Record, VectorCache
from gateway.content.keys import KEY_VERSION
from gateway.errors import CommandError

FORMAT = "gemini-embedding-gateway/cache-export"
VERSION = 1
MANIFEST = "manifest.json"
_BATCH = 500


def export(
    cache: VectorCache,
    out: Path,
    *,
    model: str | None = None,
    shard_rows: int = 4096,
    progress: bool = True,
) -> dict[str, Any]:
    """Write every sound entry (of `model`, if given) to `out`; returns the manifest."""
    if out.exists() and any(out.iterdir()):
        raise CommandError(f"{out} exists and is not empty")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    writer = _ShardWriter(partial, shard_rows)
    for key, record in scan(cache, "exporting", progress):
        if record is not None and problem(record) is None and model in (None, record.model):
            writer.add(key, record)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "key_version": KEY_VERSION.decode(),
        "exported_at": iso_time(time.time()),
        "entries": writer.entries,
        "shards": writer.close(),
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, separators=(",", ":")))
    if out.exists():
        out.rmdir()
    os.replace(partial, out)  # the export appears whole or not at all
    return manifest


class _ShardWriter:
    """Buffers rows per dimension and writes a .npy shard every `shard_rows` rows."""

    def __init__(self, directory: Path, shard_rows: int) -> None:
        self.directory, self.shard_rows = directory, max(1, shard_rows)
        self.open: dict[int, tuple[NDArray[np.float32], dict[str, list[Any]]]] = {}
        self.shards: list[dict[str, Any]] = []
        self.entries = 0

    def add(self, key: bytes, record: Record) -> None:
        rows, meta = self.open.get(record.dims) or self._new(record.dims)
        n = len(meta["keys"])
        rows[n] = np.frombuffer(record.vector, dtype="<f4")
        meta["keys"].append(key.hex())
        meta["models"].append(record.model)
        meta["created"].append(record.created)
        meta["tokens"].append(record.tokens)
        self.entries += 1
        if n + 1 == self.shard_rows:
            self._flush(record.dims)

    def _new(self, dims: int) -> tuple[NDArray[np.float32], dict[str, list[Any]]]:
        meta: dict[str, list[Any]] = {"keys": [], "models": [], "created": [], "tokens": []}
        self.open[dims] = (np.empty((self.shard_rows, dims), dtype="<f4"), meta)
        return self.open[dims]

    def _flush(self, dims: int) -> None:
        rows, meta = self.open.pop(dims)
        name = f"vectors-{len(self.shards):05d}.npy"
        path = self.directory / name
        np.save(path, rows[: len(meta["keys"])])
        entry = {"file": name, "dims": dims, "rows": len(meta["keys"]), "sha256": _sha256(path)}
        self.shards.append({**entry, **meta})

    def close(self) -> list[dict[str, Any]]:
        for dims in sorted(self.open):
            self._flush(dims)
        return self.shards


@dataclass
class ImportReport:
    imported: int = 0
    skipped: int = 0  # already in the cache (kept unless --overwrite)
    rejected: int = 0  # not finite, zero, or the wrong length


def import_(
    cache: VectorCache, source: Path, *, overwrite: bool = False, progress: bool = True
) -> ImportReport:
    """Load an export into the cache; every shard is checked before anything is written."""
    manifest = read_manifest(source)
    report = ImportReport()
    try:
        shards = [_checked(source, shard) for shard in manifest["shards"]]
        bar = Progress("importing", sum(int(s["rows"]) for s, _ in shards), enabled=progress)
        for shard, rows in shards:
            for start in range(0, shard["rows"], _BATCH):
                chunk = np.ascontiguousarray(rows[start : start + _BATCH])
                _import_chunk(cache, shard, start, chunk, overwrite, report)
                bar.advance(len(chunk))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CommandError(f"{source}: malformed export ({type(exc).__name__}: {exc})") from exc
    finally:
        if overwrite and report.imported:
            cache.entries_changed()  # entries a server holds in memory may have been rewritten
    bar.close()
    return report


def _checked(source: Path, shard: dict[str, Any]) -> tuple[dict[str, Any], NDArray[np.float32]]:
    """The shard's rows, once its checksum, dtype, shape and metadata lengths agree."""
    path = source / shard["file"]
    if path.parent != source or not path.is_file():
        raise CommandError(f"{path}: missing from the export")
    if _sha256(path) != shard["sha256"]:
        raise CommandError(f"{path}: checksum mismatch; the export is damaged")
    rows: NDArray[np.float32] = np.load(path, mmap_mode="r", allow_pickle=False)
    n, dims = int(shard["rows"]), int(shard["dims"])
    if rows.dtype != np.dtype("<f4") or rows.shape != (n, dims):
        raise CommandError(f"{path}: expected float32 {n}x{dims}, found {rows.dtype} {rows.shape}")
    if any(len(shard[column]) != n for column in ("keys", "models", "created", "tokens")):
        raise CommandError(f"{path}: the manifest lists a different number of entries")
    if any(len(bytes.fromhex(key)) != 32 for key in shard["keys"]):
        raise CommandError(f"{path}: a key is not 32 bytes of hex")
    return shard, rows


def _import_chunk(
    cache: VectorCache,
    shard: dict[str, Any],
    start: int,
    chunk: NDArray[np.float32],
    overwrite: bool,
    report: ImportReport,
) -> None:
    records: dict[bytes, Record] = {}
    for offset, vector in enumerate(chunk):
        i = start + offset
        record = Record(
            str(shard["models"][i]),
            int(shard["dims"]),
            float(shard["created"][i]),
            int(shard["tokens"][i]),
            vector.tobytes(),
        )
        if problem(record) is None:
            records[bytes.fromhex(shard["keys"][i])] = record
        else:
            report.rejected += 1
    written = cache.put_records(records, overwrite=overwrite)
    report.imported += written
    report.skipped += len(records) - written


def read_manifest(source: Path) -> dict[str, Any]:
    """The export's manifest, checked for format, version and key version."""
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise CommandError(f"{source}: no {MANIFEST}; not a gateway cache export") from exc
    except json.JSONDecodeError as exc:
        raise CommandError(f"{source / MANIFEST}: not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CommandError(f"{source}: not a version {VERSION} gateway cache export")
    if manifest.get("key_version") != KEY_VERSION.decode():
        raise CommandError(
            f"{source}: keys are {manifest.get('key_version')!r}, this gateway uses "
            f"{KEY_VERSION.decode()!r}; its vectors could never be found"
        )
    return manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
