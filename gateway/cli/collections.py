"""`gateway collections list | show | create | delete | add | search | remove`, over HTTP.

The CLI talks to a running gateway rather than to the files: the server process owns each
collection's in-memory index and its single writer, and embeds inputs through its cache and
upstream. A second process writing the SQLite store directly would race that writer and leave the
server's index blind to the change until a restart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from gateway.cli.options import URL_ENV, server_url
from gateway.errors import CommandError

KEY_ENV = "GATEWAY_CLIENT_KEY"
_BATCH = 100


def register(sub: Any) -> None:
    """Add `collections` and its subcommands to the top-level subparsers."""
    top = sub.add_parser("collections", help="local vector search collections (needs `serve`)")
    commands = top.add_subparsers(dest="collections_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    common.add_argument(
        "--url", help=f"gateway base URL (default: from --host/--port, else ${URL_ENV})"
    )
    common.add_argument("--host", help="gateway host (default: [server] host, as `serve` reads it)")
    common.add_argument("--port", type=int, help="gateway port (default: [server] port)")
    common.add_argument("--api-key", help=f"client key when auth is on (default: ${KEY_ENV})")
    common.add_argument("--json", action="store_true", help="print the JSON answer")

    commands.add_parser("list", parents=[common], help="every collection").set_defaults(func=_list)
    show = commands.add_parser("show", parents=[common], help="one collection's card")
    show.add_argument("name")
    show.set_defaults(func=_show)

    create = commands.add_parser("create", parents=[common], help="a new collection")
    create.add_argument("name")
    create.add_argument("--model", help="embedding model (default: [embeddings] default_model)")
    create.add_argument("--dimensions", type=int, help="vector size (default: the model's)")
    create.add_argument("--dtype", choices=("f32", "f16", "i8", "b1"), default="f32")
    for option in ("connectivity", "expansion-add", "expansion-search", "rescore-multiple"):
        create.add_argument(f"--{option}", type=int, help="default: [collections] in config")
    create.set_defaults(func=_create)

    delete = commands.add_parser("delete", parents=[common], help="delete a collection")
    delete.add_argument("name")
    delete.set_defaults(func=_delete)

    add = commands.add_parser("add", parents=[common], help="add texts or a JSONL file of items")
    add.add_argument("name")
    add.add_argument("texts", nargs="*", help="texts to add, one item each")
    add.add_argument("--id", action="append", dest="ids", help="id per text (repeat)")
    add.add_argument("--metadata", help="JSON object for every text given")
    add.add_argument(
        "--jsonl", type=Path, help='items, one per line: {"id", "input" | "vector", "metadata"}'
    )
    add.set_defaults(func=_add)

    search = commands.add_parser("search", parents=[common], help="nearest items to a text")
    search.add_argument("name")
    search.add_argument("query", help="the text to search for")
    search.add_argument("-k", type=int, default=10, help="results (1..1000, default 10)")
    search.add_argument("--filter", help='metadata equality, as JSON: {"lang": "en"}')
    search.set_defaults(func=_search)

    remove = commands.add_parser("remove", parents=[common], help="delete items by id")
    remove.add_argument("name")
    remove.add_argument("ids", nargs="+")
    remove.set_defaults(func=_remove)

    for parser in commands.choices.values():
        command = parser.get_default("func")
        parser.set_defaults(func=lambda args, command=command: _run(command, args))


def _run(command: Any, args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            code: int = command(client, args)
            return code
    except CommandError as exc:
        print(f"gateway collections: {exc}", file=sys.stderr)
        return 1


def _client(args: argparse.Namespace) -> httpx.Client:
    url = server_url(args)
    key = args.api_key or os.environ.get(KEY_ENV)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=300)


def _call(client: httpx.Client, method: str, path: str, body: Any = None) -> dict[str, Any]:
    try:
        response = client.request(method, path, json=body)
    except httpx.TransportError as exc:
        where = client.base_url
        raise CommandError(
            f"no gateway answering at {where} ({exc}); start `gateway serve`"
        ) from exc
    try:
        answer: dict[str, Any] = response.json()
    except ValueError as exc:
        raise CommandError(f"HTTP {response.status_code}: {response.text[:200]}") from exc
    if response.status_code != 200:
        error = answer.get("error", {})
        raise CommandError(f"HTTP {response.status_code}: {error.get('message', response.text)}")
    return answer


def _print(args: argparse.Namespace, answer: dict[str, Any], text: str) -> int:
    print(json.dumps(answer, indent=2) if args.json else text)
    return 0


def _line(card: dict[str, Any]) -> str:
    index = card["index"]["search"]
    return (
        f"{card['name']:<24} {card['count']:>9} items  {card['dimensions']:>4}d {card['dtype']:<3} "
        f"{card['model']:<28} {index:<8} {card['status']}"
    )


def _list(client: httpx.Client, args: argparse.Namespace) -> int:
    answer = _call(client, "GET", "/v1/collections")
    lines = [_line(card) for card in answer["data"]] or ["(no collections)"]
    return _print(args, answer, "\n".join(lines))


def _show(client: httpx.Client, args: argparse.Namespace) -> int:
    answer = _call(client, "GET", f"/v1/collections/{args.name}")
    return _print(args, answer, "\n".join(f"{k}: {v}" for k, v in answer.items()))


def _create(client: httpx.Client, args: argparse.Namespace) -> int:
    body = {"name": args.name, "model": args.model, "dimensions": args.dimensions}
    body["dtype"] = args.dtype
    for field in ("connectivity", "expansion_add", "expansion_search", "rescore_multiple"):
        body[field] = getattr(args, field)
    answer = _call(client, "POST", "/v1/collections", {k: v for k, v in body.items() if v})
    return _print(args, answer, _line(answer))


def _delete(client: httpx.Client, args: argparse.Namespace) -> int:
    answer = _call(client, "DELETE", f"/v1/collections/{args.name}")
    return _print(args, answer, f"deleted {args.name}")


def _items(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    metadata = _json_arg(args.metadata, "--metadata") if args.metadata else None
    ids = args.ids or []
    if ids and len(ids) != len(args.texts):
        raise CommandError(f"{len(ids)} --id for {len(args.texts)} texts")
    for i, text in enumerate(args.texts):
        item: dict[str, Any] = {"input": text}
        if ids:
            item["id"] = ids[i]
        if metadata is not None:
            item["metadata"] = metadata
        yield item
    if args.jsonl is not None:
        try:
            lines = sys.stdin if str(args.jsonl) == "-" else args.jsonl.open(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {args.jsonl}: {exc.strerror or exc}") from exc
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield _json_arg(line, f"{args.jsonl}:{number}")


def _add(client: httpx.Client, args: argparse.Namespace) -> int:
    added = replaced = 0
    batch: list[dict[str, Any]] = []
    answer: dict[str, Any] = {}
    for item in [*_items(args), None]:
        if item is not None:
            batch.append(item)
        if batch and (item is None or len(batch) == _BATCH):
            answer = _call(client, "POST", f"/v1/collections/{args.name}/items", {"items": batch})
            added, replaced = added + answer["added"], replaced + answer["replaced"]
            batch = []
    if not answer:
        raise CommandError("nothing to add: give texts or --jsonl FILE")
    return _print(args, answer, f"added {added}, replaced {replaced}; {answer['count']} items")


def _search(client: httpx.Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"input": args.query, "k": args.k}
    if args.filter:
        body["filter"] = _json_arg(args.filter, "--filter")
    answer = _call(client, "POST", f"/v1/collections/{args.name}/search", body)
    lines = [
        f"{hit['score']:.4f}  {hit['id']}  {json.dumps(hit['metadata']) if hit['metadata'] else ''}"
        for hit in answer["data"]
    ]
    return _print(args, answer, "\n".join(lines) or "(no results)")


def _remove(client: httpx.Client, args: argparse.Namespace) -> int:
    answer = _call(client, "DELETE", f"/v1/collections/{args.name}/items", {"ids": args.ids})
    return _print(args, answer, f"deleted {answer['deleted']}; {answer['count']} items left")


def _json_arg(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{where}: not valid JSON ({exc})") from exc
