"""Two LiteLLM proxies on one Redis cache: its answer to the fleet's identical-misses workload.

The same venv and `gemini/` provider set-up as bench/peers/litellm.py, with `cache_params.type:
redis` on the bench's redis-server (a namespace of their own). LiteLLM's docs describe this as the
way several proxies share one cache; it stores a response after the upstream answers, so requests
already in flight when the first answer lands are misses too.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis

from bench.http_servers import Server, free_port
from bench.outputs import SCRATCH
from bench.peers.litellm import ENV, MODEL, ensure_venv, version
from gateway.fake import FakeGemini

__all__ = ["identical_misses", "report_rows", "version"]
_ENTRY = re.compile(r"[^:]+:[0-9a-f]{64}")


def write_config(fake_url: str, redis_port: int, namespace: str, directory: Path) -> Path:
    """A proxy config routing `gemini-embedding-2` to FakeGemini, cached in Redis."""
    directory.mkdir(parents=True, exist_ok=True)
    text = "\n".join(
        [
            "model_list:",
            f"  - model_name: {MODEL}",
            "    litellm_params:",
            f"      model: gemini/{MODEL}",
            f"      api_base: {fake_url}/v1beta",
            "      api_key: bench-dummy-key",
            "litellm_settings:",
            "  cache: true",
            "  drop_params: true",
            "  cache_params:",
            "    type: redis",
            "    host: 127.0.0.1",
            f'    port: "{redis_port}"',
            f"    namespace: {namespace}",
            '    supported_call_types: ["embedding", "aembedding"]',
            "",
        ]
    )
    path = directory / "litellm-redis.yaml"
    path.write_text(text)
    return path


def proxy(name: str, config: Path, key: str) -> Server:
    """The LiteLLM proxy (its default uvicorn server, one worker) on `config`."""
    port = free_port()
    cmd = [
        str(ensure_venv()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
        "--num_workers", "1",
    ]  # fmt: skip
    env = {**ENV, "LITELLM_MASTER_KEY": key}
    headers = {"Authorization": f"Bearer {key}"}
    return Server(name, cmd, port, env=env, cwd=config.parent, headers=headers)


async def _burst(servers: list[Server], n: int, text: str) -> list[int]:
    body = {"model": MODEL, "input": [text], "encoding_format": "base64"}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:
        replies = await asyncio.gather(
            *(
                client.post(
                    servers[i % 2].url + "/v1/embeddings", json=body, headers=servers[i % 2].headers
                )
                for i in range(n)
            )
        )
    return [r.status_code for r in replies]


def identical_misses(
    fake: FakeGemini, fake_url: str, redis_port: int, n: int, bursts: int = 3
) -> tuple[list[int], int, int]:
    """Upstream items for `n` identical concurrent misses over two proxies (`bursts` times, a new
    input each), then for a repeat of the last input.

    The repeat (one request to each proxy after the burst) should cost 0 items: it shows the
    Redis cache is on; the third figure is the keys it left in Redis under its namespace.
    """
    namespace = f"litellm{uuid.uuid4().hex[:8]}"
    config = write_config(fake_url, redis_port, namespace, SCRATCH / "litellm-redis")
    key = f"sk-bench-{secrets.token_hex(16)}"
    servers = [proxy(f"litellm-redis-{side}", config, key) for side in ("a", "b")]
    try:
        with ThreadPoolExecutor(2) as pool:  # each takes ~10 s to import and start
            for started in [pool.submit(s.start, "/v1/models") for s in servers]:
                started.result()
        items = []
        saved, fake.latency_s = fake.latency_s, 0.02  # like bench_fleet's in-process misses
        try:
            for _ in range(bursts):
                text = f"same {uuid.uuid4().hex}"
                before = fake.items_received
                statuses = asyncio.run(_burst(servers, n, text))
                if set(statuses) != {200}:
                    raise RuntimeError(f"LiteLLM answered {sorted(set(statuses))}")
                items.append(fake.items_received - before)
        finally:
            fake.latency_s = saved
        before = fake.items_received
        asyncio.run(_burst(servers, 2, text))
        with redis.Redis(port=redis_port) as client:
            # Its response-cache entries (one per input); the rest are its router's counters.
            stored = sum(
                1 for k in client.scan_iter(f"{namespace}:*") if _ENTRY.fullmatch(k.decode())
            )
        return items, fake.items_received - before, stored
    finally:
        for server in servers:
            server.stop()


def report_rows(peer: tuple[str, list[int], int, int] | None, n: int) -> list[str]:
    """The LiteLLM row under the identical-misses table, and what it was."""
    if peer is None:
        return ["", "LiteLLM's Redis cache: not run (`--quick` skips it; `--litellm` runs it)."]
    release, burst, repeat, stored = peer
    return [
        f"| the same {n} over two LiteLLM {release} proxies, `cache: type redis` on the same"
        f" server: upstream items, {len(burst)} bursts | {', '.join(map(str, burst))} | - |",
        "",
        f"LiteLLM: two `litellm --config` proxies (1 uvicorn worker each, bench/peers/"
        f"litellm_redis.py), `gemini/` provider on FakeGemini over a socket (20 ms a call),"
        f" requests alternating between them, all sent at once, a new input per burst. A"
        f" repeat afterwards (one request to each proxy) cost {repeat} upstream items and the"
        f" proxies left {stored} response entries in Redis under their namespace, one per"
        f" input: the cache was on and shared. LiteLLM stores an answer after the upstream"
        f" call and has no single-flight, so every request already in flight before the"
        f" first answer landed went upstream as well.",
    ]
