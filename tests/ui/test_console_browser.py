"""The console in a real Chromium (Debian's, through Playwright) against `gateway serve
--fake-upstream` on loopback: what a person sees on each page, and what the page must not do
(errors, requests to other origins, payloads in the tail). Screenshots go to a temporary
directory named in the output of `pytest -s` (SCREENSHOTS)."""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest
from PIL import Image

from tests.cache.redis_server import RedisServer
from tests.e2e.processes import Server, serve_fake
from tests.media_samples import mp4, pdf, wav
from tests.ui.samples import NEAR_TEXT, NEAR_VARIANT

pytestmark = pytest.mark.e2e
GE2 = "gemini-embedding-2"
KEY = "sk-console-browser"
SECRET = "a private sentence the tail must never show"
AUTH = {"authorization": f"Bearer {KEY}"}

if TYPE_CHECKING:  # imported where a browser starts: 0.3 s in every xdist worker that collects
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright


def png(color: tuple[int, int, int], size: int = 48) -> bytes:
    image = Image.new("RGB", (size, size), color)
    for x in range(size // 2):  # a diagonal, so two colours are two different pictures
        image.putpixel((x, x), (255 - color[0], 255 - color[1], 255 - color[2]))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None or importlib.util.find_spec("playwright") is None:
        why = "Debian's chromium" if found is None else "playwright"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip(f"{why} is not installed")
    return found


@pytest.fixture(scope="module")
def browser(chromium: str, starting: Future[Server]) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = _launch(p, chromium)
        yield launched
        launched.close()


def _launch(p: Playwright, chromium: str) -> Browser:
    return p.chromium.launch(executable_path=chromium, headless=True)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("console-screenshots")
    print(f"SCREENSHOTS {where}")
    return where


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The fleet tier the overview shows (a failure under CI when redis-server is missing)."""
    server = RedisServer(tmp_path_factory.mktemp("console-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def starting(
    tmp_path_factory: pytest.TempPathFactory, redis: RedisServer
) -> Iterator[Future[Server]]:
    """The one server, with client keys (the page's login is part of what is tested), near
    reuse for long texts and a shared tier; it starts in a thread while the browser launches."""
    where = tmp_path_factory.mktemp("console")
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            serve_fake,
            where,
            GATEWAY_API_KEYS=KEY,
            GATEWAY_LOG_FORMAT="json",
            GATEWAY_NEAR_DUPLICATES_TEXT="true",  # texts of 160+ characters only
            GATEWAY_SHARED_URL=redis.url,
            GATEWAY_SHARED_TIMEOUT_MS="2000",  # a loaded test machine is not a failing tier
        )
        try:
            yield future
        finally:
            if future.exception() is None:
                future.result().stop()


@pytest.fixture(scope="module")
def server(starting: Future[Server], browser: Browser) -> Server:
    return starting.result()


def logged_in(browser: Browser, **options: Any) -> BrowserContext:
    """A browser context whose tab already holds the key, as after the key form."""
    context = browser.new_context(**options)
    # An init script goes in through the DevTools protocol, not the page: the CSP does not apply.
    context.add_init_script(f"sessionStorage.setItem('gateway.console.key', {KEY!r})")
    return context


class Watch:
    """What a page did that it must not: script errors, console errors, other origins."""

    def __init__(self, page: Page, origin: str, allowed: tuple[str, ...] = ()) -> None:
        self.errors: list[str] = []
        self.outside: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)
        page.on("request", lambda r: self._request(r.url, origin))
        self.allowed = allowed

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not any(a in message.text for a in self.allowed):
            self.errors.append(message.text)

    def _request(self, url: str, origin: str) -> None:
        if not url.startswith((origin + "/", "data:", "blob:")):
            self.outside.append(url)

    def check(self) -> None:
        assert self.errors == []
        assert self.outside == []


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = logged_in(browser, viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    watch = Watch(opened, server.base)
    opened.set_default_timeout(15_000)  # a loaded machine; passing tests never wait it
    yield opened
    context.close()
    watch.check()


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    # 15 s as for the pages' own waits: expect's default 5 s ran out once with two suites on
    # the 2 cores (a result still shown when it should have been hidden); passing tests never
    # wait it
    playwright_expect.set_options(timeout=15_000)
    return playwright_expect(target)


def test_overview_numbers_move_after_openai_sdk_requests_and_the_tail_shows_no_payload(
    page: Page, server: Server, screenshots: Path
) -> None:
    answer = page.goto(f"{server.base}/ui")
    assert answer is not None
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    expect(page.locator("#ov-updated")).to_contain_text("Updated")
    hit_ratio = page.locator("#ov-hit-ratio").inner_text()
    saved = page.locator("#ov-saved").inner_text()
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key=KEY, max_retries=0)
    for _ in range(4):  # one miss, three hits
        client.embeddings.create(model=GE2, input="the overview watches this")
    page.reload()
    expect(page.locator("#ov-hit-ratio")).not_to_have_text(hit_ratio)
    expect(page.locator("#ov-saved")).not_to_have_text(saved)
    assert page.locator("#ov-hit-detail").inner_text().startswith(("3 exact", "4 exact"))
    expect(page.locator("#ov-breaker")).to_have_text("closed")
    expect(page.locator("#ov-shared")).to_have_text("ok")  # the fleet tier answers
    expect(page.locator("#ov-shared-detail")).to_contain_text(" misses, ")
    expect(page.locator("#ov-mode")).to_have_text("upstream: fake")
    page.screenshot(path=screenshots / "overview.png", full_page=True)
    secret = client.embeddings.with_raw_response.create(model=GE2, input=SECRET)
    # The views are keyboard reachable: the first Tab stop is the nav, Requests its fourth link.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('nav') !== null")
    for _ in range(3):
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    row = page.locator("#rq-table tbody tr", has_text=secret.headers["x-request-id"])
    expect(row).to_contain_text("/v1/embeddings")
    expect(row).to_contain_text("200")
    assert SECRET not in page.content()  # the tail has the line's figures, never the payload
    assert "/ui/api" not in page.locator("#rq-table").inner_text()  # its own polls stay out
    page.screenshot(path=screenshots / "requests.png", full_page=True)


def test_the_playground_embeds_a_text_miss_then_hit_and_a_dropped_png(
    page: Page, server: Server, screenshots: Path, tmp_path: Path
) -> None:
    page.goto(f"{server.base}/ui#playground")
    page.fill("#pg-text-a", "a sentence for the playground")
    page.select_option("#pg-dims", "768")
    page.click("#pg-embed")
    expect(page.locator("#pg-cache")).to_have_text("MISS")
    expect(page.locator("#pg-summary")).to_contain_text("768 values of float")
    assert page.locator("#pg-values").inner_text().startswith("[")
    page.click("#pg-embed")
    expect(page.locator("#pg-cache")).to_have_text("HIT")
    picture = tmp_path / "dropped.png"
    picture.write_bytes(png((200, 40, 40)))
    page.set_input_files("#pg-file-a", str(picture))
    expect(page.locator("#pg-preview-a")).to_be_visible()
    page.click("#pg-embed")
    expect(page.locator("#pg-cache")).to_have_text("MISS")
    expect(page.locator("#pg-summary")).to_contain_text("tokens")
    page.fill("#pg-text-b", "a red square")
    page.click("#pg-compare")
    expect(page.locator("#pg-cosine")).to_contain_text("cosine(A, B) = ")
    page.select_option("#pg-dtype", "ubinary")  # packed bits compare by Hamming distance
    page.click("#pg-compare")
    expect(page.locator("#pg-cosine")).to_contain_text("bits alike(A, B) = ")
    expect(page.locator("#pg-cosine")).to_contain_text("768 bits")
    expect(page.locator("#pg-summary")).to_contain_text("96 values of ubinary")
    page.screenshot(path=screenshots / "playground.png", full_page=True)


def test_a_near_duplicate_text_shows_near_in_the_playground_and_the_overview(
    page: Page, server: Server
) -> None:
    page.goto(f"{server.base}/ui#playground")
    page.fill("#pg-text-a", NEAR_TEXT)
    page.click("#pg-embed")
    expect(page.locator("#pg-cache")).to_have_text("MISS")
    page.fill("#pg-text-a", NEAR_VARIANT)
    page.click("#pg-embed")
    expect(page.locator("#pg-cache")).to_have_text("NEAR")
    page.goto(f"{server.base}/ui#overview")
    expect(page.locator("#ov-hit-detail")).to_contain_text("1 near")


def test_the_playground_embeds_audio_video_and_a_pdf(
    page: Page, server: Server, tmp_path: Path
) -> None:
    page.goto(f"{server.base}/ui#playground")
    for name, data in (("clip.wav", wav(1.0)), ("clip.mp4", mp4(2.0)), ("doc.pdf", pdf(1))):
        path = tmp_path / name
        path.write_bytes(data)
        page.set_input_files("#pg-file-a", str(path))
        page.click("#pg-embed")
        expect(page.locator("#pg-cache")).to_have_text("MISS")
        expect(page.locator("#pg-error")).to_have_text("")
        expect(page.locator("#pg-summary")).to_contain_text("3072 values of float")
        page.click("#pg-clear")  # the next MISS is the next file's own answer
        expect(page.locator("#pg-result")).to_be_hidden()


def test_collections_list_and_search_by_text_and_by_image_in_score_order(
    page: Page, server: Server, screenshots: Path, tmp_path: Path
) -> None:
    red, blue = png((220, 30, 30)), png((30, 30, 220))
    http = httpx.Client(base_url=server.base, headers=AUTH)
    assert (
        http.post("/v1/collections", json={"name": "pictures", "dimensions": 256}).status_code
        == 200
    )
    items = [
        {
            "id": "red",
            "input": [{"type": "image_url", "image_url": data_uri(red)}],
            "metadata": {"label": "red square", "thumbnail": data_uri(red)},
        },
        {
            "id": "blue",
            "input": [{"type": "image_url", "image_url": data_uri(blue)}],
            "metadata": {"label": "blue square", "thumbnail": data_uri(blue)},
        },
        {"id": "cat", "input": "a cat sleeping on a sofa", "metadata": {"label": "cat"}},
    ]
    added = http.post("/v1/collections/pictures/items", json={"items": items})
    assert added.status_code == 200, added.text
    http.close()
    page.goto(f"{server.base}/ui#collections")
    row = page.locator("#col-table tbody tr", has_text="pictures")
    expect(row).to_contain_text("3")
    expect(row).to_contain_text("256")
    page.fill("#col-text", "a cat sleeping on a sofa")
    page.click("#col-search button[type=submit]")
    expect(page.locator("#col-results li")).to_have_count(3)
    assert page.locator("#col-results li .id").first.inner_text() == "cat"
    scores = [float(s) for s in page.locator("#col-results .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    query = tmp_path / "blue.png"
    query.write_bytes(blue)
    page.set_input_files("#col-file", str(query))
    page.click("#col-search button[type=submit]")
    expect(page.locator("#col-results li .id").first).to_have_text("blue")
    scores = [float(s) for s in page.locator("#col-results .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    expect(page.locator("#col-results li").first.locator("img.thumb")).to_be_visible()
    page.screenshot(path=screenshots / "collections.png", full_page=True)
    # More like this: the item's own vector is the query, the item itself is not a result.
    page.locator("#col-results li", has_text="blue").get_by_role("button").click()
    expect(page.locator("#col-query")).to_contain_text("most like blue")
    expect(page.locator("#col-results li")).to_have_count(2)
    ids = page.locator("#col-results li .id").all_inner_texts()
    assert sorted(ids) == ["cat", "red"]
    scores = [float(s) for s in page.locator("#col-results .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    expect(page.locator("#col-error")).to_have_text("")
    page.screenshot(path=screenshots / "collections-more-like-this.png", full_page=True)


def test_at_phone_width_nothing_scrolls_sideways(browser: Browser, server: Server) -> None:
    context = logged_in(browser, viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    watch = Watch(phone, server.base)
    for view in ("overview", "playground", "collections"):
        phone.goto(f"{server.base}/ui#{view}")
        expect(phone.locator(f"#view-{view}")).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, view
    context.close()
    watch.check()


def test_with_client_keys_the_console_shows_only_the_key_form_until_a_valid_key(
    browser: Browser, server: Server, screenshots: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    # The browser reports each refused call as a failed resource load: the 401s are the point.
    watch = Watch(page, server.base, allowed=("status of 401",))
    page.set_default_timeout(15_000)  # a loaded machine; passing tests never wait it
    page.goto(f"{server.base}/ui")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.locator("#view-overview")).to_be_hidden()
    page.screenshot(path=screenshots / "login.png")
    page.fill("#login-key", "not-the-key")
    page.press("#login-key", "Enter")
    expect(page.locator("#login-error")).to_have_text("That key was refused.")
    expect(page.locator("#view-overview")).to_be_hidden()
    page.fill("#login-key", KEY)
    page.press("#login-key", "Enter")
    expect(page.locator("#view-overview")).to_be_visible()
    expect(page.locator("#ov-updated")).to_contain_text("Updated")
    expect(page.locator("#login")).to_be_hidden()
    page.reload()  # the key lives in this tab's sessionStorage
    expect(page.locator("#ov-updated")).to_contain_text("Updated")
    context.close()
    watch.check()
