"""`gateway bulk submit | status | results | cancel`: bulk jobs from the shell, over HTTP.

The same jobs as POST /v1/batches: the running gateway owns the job store and polls Google, so
the CLI only uploads, asks and downloads. A progress bar on a TTY, plain lines otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

from gateway.cli.options import URL_ENV, server_url
from gateway.errors import CommandError

KEY_ENV = "GATEWAY_CLIENT_KEY"
ENDED = ("completed", "failed", "expired", "cancelled")
_BAR = 30


def register(sub: Any) -> None:
    """Add `bulk` and its subcommands to the top-level subparsers."""
    top = sub.add_parser("bulk", help="batch jobs at the Batch API's half price (needs `serve`)")
    commands = top.add_subparsers(dest="bulk_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    common.add_argument("--url", help=f"gateway base URL (default: [server], else ${URL_ENV})")
    common.add_argument("--host", help="gateway host (default: [server] host)")
    common.add_argument("--port", type=int, help="gateway port (default: [server] port)")
    common.add_argument("--api-key", help=f"client key when auth is on (default: ${KEY_ENV})")
    common.add_argument("--json", action="store_true", help="print the batch object as JSON")

    submit = commands.add_parser("submit", parents=[common], help="upload a JSONL file, start")
    submit.add_argument("file", type=Path, help="OpenAI batch lines for /v1/embeddings")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    submit.add_argument("--interval", type=float, default=2.0, help="seconds between looks")
    submit.set_defaults(func=_submit)
    status = commands.add_parser("status", parents=[common], help="one job's progress and cost")
    status.add_argument("id")
    status.set_defaults(func=_status)
    results = commands.add_parser("results", parents=[common], help="download the output file")
    results.add_argument("id")
    results.add_argument("-o", "--output", type=Path, required=True, help="where to write it")
    results.add_argument("--errors", type=Path, help="also write the error file here")
    results.set_defaults(func=_results)
    cancel = commands.add_parser("cancel", parents=[common], help="cancel a running job")
    cancel.add_argument("id")
    cancel.set_defaults(func=_cancel)
    for parser in commands.choices.values():
        command = parser.get_default("func")
        parser.set_defaults(func=lambda args, command=command: _run(command, args))


def _run(command: Callable[[httpx.Client, argparse.Namespace], int], args: Any) -> int:
    key = args.api_key or os.environ.get(KEY_ENV)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(base_url=server_url(args), headers=headers, timeout=300) as client:
            return command(client, args)
    except CommandError as exc:
        print(f"gateway bulk: {exc}", file=sys.stderr)
        return 1


def _call(client: httpx.Client, method: str, path: str, **kw: Any) -> dict[str, Any]:
    try:
        response = client.request(method, path, **kw)
    except httpx.TransportError as exc:
        raise CommandError(
            f"no gateway answering at {client.base_url} ({exc}); start `gateway serve`"
        ) from exc
    try:
        answer: dict[str, Any] = response.json()
    except ValueError as exc:
        raise CommandError(f"HTTP {response.status_code}: {response.text[:200]}") from exc
    if response.status_code != 200:
        error = answer.get("error", {})
        where = f" (`{error['param']}`)" if error.get("param") else ""
        raise CommandError(f"HTTP {response.status_code}: {error.get('message')}{where}")
    return answer


def _submit(client: httpx.Client, args: argparse.Namespace) -> int:
    try:
        source = args.file.open("rb")
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    with source:
        files = {"file": (args.file.name, source, "application/jsonl")}
        uploaded = _call(client, "POST", "/v1/files", data={"purpose": "batch"}, files=files)
    body = {
        "input_file_id": uploaded["id"],
        "endpoint": "/v1/embeddings",
        "completion_window": "24h",
    }
    batch = _call(client, "POST", "/v1/batches", json=body)
    if not args.wait:
        return _show(args, batch)
    print(f"submitted {batch['id']}", file=sys.stderr)
    batch = follow(client, batch["id"], args.interval, sys.stderr)
    _show(args, batch)
    return 0 if batch["status"] == "completed" else 1


def follow(
    client: httpx.Client,
    batch_id: str,
    interval: float,
    out: TextIO,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the job ends: a redrawn bar on a TTY, a line per change otherwise."""
    tty = out.isatty()
    last = ""
    while True:
        batch = _call(client, "GET", f"/v1/batches/{batch_id}")
        text = progress(batch, bar=tty)
        if tty:
            out.write(f"\r{text}\x1b[K")
        elif text != last:
            out.write(text + "\n")
        out.flush()
        last = text
        if batch["status"] in ENDED:
            if tty:
                out.write("\n")
            return batch
        sleep(interval)


def progress(batch: dict[str, Any], *, bar: bool) -> str:
    """`status [bar] done/total, failed · cached N, deduplicated N, billed N · $x (batch) vs $y`."""
    counts = batch.get("request_counts") or {}
    total, done = counts.get("total", 0), counts.get("completed", 0)
    failed = counts.get("failed", 0)
    meta = batch.get("metadata") or {}
    head = f"{batch['status']:<11}"
    if bar:
        filled = int(_BAR * (done + failed) / total) if total else 0
        head += f" [{'#' * filled}{'.' * (_BAR - filled)}]"
    return (
        f"{head} lines {done}/{total} done, {failed} failed"
        f" | items cached {meta.get('gateway_cached', 0)},"
        f" deduplicated {meta.get('gateway_deduplicated', 0)},"
        f" submitted {meta.get('gateway_billed', 0)}"
        f" | ${float(meta.get('gateway_dollars_batch', 0)):.4f} at the batch price,"
        f" ${float(meta.get('gateway_dollars_interactive', 0)):.4f} interactive"
    )


def _status(client: httpx.Client, args: argparse.Namespace) -> int:
    return _show(args, _call(client, "GET", f"/v1/batches/{args.id}"))


def _cancel(client: httpx.Client, args: argparse.Namespace) -> int:
    return _show(args, _call(client, "POST", f"/v1/batches/{args.id}/cancel"))


def _results(client: httpx.Client, args: argparse.Namespace) -> int:
    batch = _call(client, "GET", f"/v1/batches/{args.id}")
    if batch["status"] not in ENDED:
        raise CommandError(f"{args.id} is {batch['status']}: no results yet")
    lines = _download(client, batch.get("output_file_id"), args.output)
    print(f"{lines} lines -> {args.output}")
    if args.errors is not None:
        errors = _download(client, batch.get("error_file_id"), args.errors)
        print(f"{errors} error lines -> {args.errors}")
    return 0


def _download(client: httpx.Client, file_id: str | None, target: Path) -> int:
    lines = 0
    with target.open("wb") as out:
        if file_id is None:
            return 0
        with client.stream("GET", f"/v1/files/{file_id}/content") as response:
            if response.status_code != 200:
                raise CommandError(f"HTTP {response.status_code} for {file_id}")
            for chunk in response.iter_bytes():
                out.write(chunk)
                lines += chunk.count(b"\n")
    return lines


def _show(args: argparse.Namespace, batch: dict[str, Any]) -> int:
    print(
        json.dumps(batch, indent=2) if args.json else f"{batch['id']} {progress(batch, bar=False)}"
    )
    return 0
