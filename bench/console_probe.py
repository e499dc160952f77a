"""bench_console's in-process and in-browser parts: the ring buffer's cost, the page's first
render in Debian's Chromium, and the README's screenshots."""

from __future__ import annotations

import base64
import io
import shutil
import statistics
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx

from bench.http_servers import Server

RENDERS = 5


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def ring_cost(cache_dir: Path) -> dict[str, float]:
    """KB a full timeline holds (an hour of points, a full tail) and ms to build the stats."""
    from gateway.api.ui.routes import build_stats
    from gateway.app import create_app
    from gateway.config import Secrets, load_settings
    from gateway.observability.timeline import Timeline

    settings = load_settings(
        None, {}, {"cache": {"dir": str(cache_dir)}, "upstream": {"fake": True}}
    )
    app = create_app(settings, secrets=Secrets(None, frozenset()))
    services = app.state["services"]
    metrics = services.metrics
    for modality in ("text", "image"):  # label sets a busy gateway has
        for result in ("hit", "miss"):
            metrics.lookups.labels("gemini-embedding-2", modality, result).inc(0)
        metrics.saved_dollars.labels("gemini-embedding-2", modality).inc(0)
    clock = _Clock()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    timeline = Timeline(metrics, lambda: 0, clock=clock, wall=clock)
    for step in range(400):  # more than an hour: the ring must drop the oldest
        metrics.lookups.labels("gemini-embedding-2", "text", "hit").inc(90)
        metrics.lookups.labels("gemini-embedding-2", "image", "miss").inc(10)
        metrics.saved_dollars.labels("gemini-embedding-2", "text").inc(0.001)
        for k in range(12):  # a spread of hit latencies: a dozen buckets per point
            state = {
                "request_id": f"{step:012x}{k:012x}",
                "model": "gemini-embedding-2",
                "inputs": 1,
                "hits": 1,
                "misses": 0,
            }
            scope = {"type": "http", "method": "POST", "path": "/v1/embeddings"}
            timeline.request_done(scope, state, 200, 0.0002 * 1.3**k)  # type: ignore[arg-type]
        clock.t += timeline.step_s
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    t0 = time.perf_counter()
    n = 200
    figures = services.cache.stats()
    for _ in range(n):
        build_stats(services, timeline, figures)
    stats_ms = (time.perf_counter() - t0) * 1000 / n
    hook_us = _hook_cost(timeline)
    services.cache.close()
    return {
        "ring_kb": held / 1024,
        "stats_ms": stats_ms,
        "points": len(timeline.points),
        "hook_us": hook_us,
    }


def _hook_cost(timeline: Any) -> float:
    """µs the timeline adds to each request (best of 5 runs of 20,000 warm-hit finishes)."""
    scope = {"type": "http", "method": "POST", "path": "/v1/embeddings"}
    state = {"t0": 0.0, "request_id": "0" * 24, "model": "gemini-embedding-2", "inputs": 1}
    state.update(hits=1, misses=0, coalesced=0)
    done = timeline.request_done
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20_000):
            done(scope, state, 200, 0.0003)
        best = min(best, (time.perf_counter() - t0) / 20_000 * 1e6)
    return best


def _chromium() -> str | None:
    found = shutil.which("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    return found


def first_render(url: str) -> dict[str, Any] | None:
    """Median first contentful paint and time to the overview's numbers, over RENDERS loads."""
    chromium = _chromium()
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    fcp, numbers = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        for _ in range(RENDERS):
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto(url + "/ui")
            page.wait_for_selector("#ov-updated:not(:empty)")
            numbers.append(page.evaluate("performance.now()"))
            fcp.append(
                page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? 0"
                )
            )
            context.close()
        browser.close()
    return {
        "n": RENDERS,
        "fcp_ms": statistics.median(fcp),
        "numbers_ms": statistics.median(numbers),
    }


def _png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (96, 96), color)
    ImageDraw.Draw(image).ellipse((20, 20, 76, 76), fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _traffic(url: str, stop: threading.Event) -> None:
    """A changing mix: new texts early, more and more repeats later, a few pictures."""
    with httpx.Client(base_url=url, timeout=30) as http:
        step = 0
        while not stop.is_set():
            step += 1
            texts: list[Any] = [f"doc {i % (3 + step // 4)}" for i in range(8)]
            if step % 5 == 0:
                color = (step * 7 % 255, 90, 160)
                uri = "data:image/png;base64," + base64.b64encode(_png(color)).decode()
                texts.append([{"type": "image_url", "image_url": uri}])
            http.post("/v1/embeddings", json={"model": "gemini-embedding-2", "input": texts})
            stop.wait(0.2)


def screenshots(server: Server, where: Path) -> None:
    """Overview (after a minute of traffic at 1 s steps) and playground, at 1280x800."""
    chromium = _chromium()
    if chromium is None:
        raise RuntimeError("--screenshots needs chromium and playwright")
    from playwright.sync_api import sync_playwright

    where.mkdir(parents=True, exist_ok=True)
    server.start(ready_path="/healthz")
    try:
        stop = threading.Event()
        traffic = threading.Thread(target=_traffic, args=(server.url, stop), daemon=True)
        traffic.start()
        time.sleep(40)  # forty 1 s points before the first picture
        picture = where / "_drop.png"
        picture.write_bytes(_png((26, 115, 232)))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url + "/ui")
            page.wait_for_selector("#ov-updated:not(:empty)")
            page.wait_for_timeout(2500)  # two polls: the requests/s figure has a rate
            page.screenshot(path=str(where / "overview.png"))
            page.goto(server.url + "/ui#playground")
            page.set_input_files("#pg-file-a", str(picture))
            page.fill("#pg-text-b", "a white circle on blue")
            page.click("#pg-compare")
            page.wait_for_selector("#pg-cosine:not(:empty)")
            page.screenshot(path=str(where / "playground.png"))
            browser.close()
        stop.set()
        traffic.join()
        picture.unlink()
        print(f"wrote {where / 'overview.png'} and {where / 'playground.png'}")
    finally:
        server.stop()
