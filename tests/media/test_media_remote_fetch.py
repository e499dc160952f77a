"""SSRF-safe remote fetch: allow-list, DNS checked by the gateway, the checked IP dialled, redirects
re-checked, size cap, timeout. No real network: DNS and HTTP are stand-ins the fetcher is given."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from gateway.config import MediaSettings
from gateway.errors import InvalidRequest, PayloadTooLarge
from gateway.fake import FakeGemini
from gateway.media.remote_fetch import RemoteFetcher, is_public
from tests import media_samples as media
from tests.conftest import Gateway, make_app, make_settings, unit

PNG = media.png()
DNS = {
    "media.example": ["93.184.216.34"],
    "cdn.media.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "rebind.example": ["93.184.216.34", "10.0.0.7"],  # one private answer is enough to refuse
    "internal.example": ["192.168.1.20"],
    "metadata.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:127.0.0.1"],
}


async def resolve(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise OSError("no such host")
    return DNS[host]


class Origin:
    """The remote side: answers by path, records what arrived."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[str, httpx.Response] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.routes.get(request.url.path, httpx.Response(404))


def fetcher(origin: Origin, **media_settings: Any) -> RemoteFetcher:
    settings = MediaSettings(
        remote_fetch=True,
        remote_allowed_hosts=(
            "media.example",
            "*.media.example",
            "rebind.example",
            "internal.example",
            "metadata.example",
            "mapped.example",
        ),
        **media_settings,
    )
    return RemoteFetcher(settings, resolver=resolve, transport=httpx.MockTransport(origin.handler))


async def test_fetch_dials_the_checked_ip_with_the_host_name_for_tls() -> None:
    origin = Origin()
    origin.routes["/a.png"] = httpx.Response(
        200, content=PNG, headers={"content-type": "image/png"}
    )
    body, mime = await fetcher(origin).fetch("https://media.example/a.png", param="p")
    assert (body, mime) == (PNG, "image/png")
    [request] = origin.requests
    assert request.url.host == "93.184.216.34"  # the address the gateway checked, not a new lookup
    assert request.headers["host"] == "media.example"
    assert request.extensions["sni_hostname"] == "media.example"  # certificate checked for the name


async def test_ipv6_and_wildcard_hosts() -> None:
    origin = Origin()
    origin.routes["/v.mp4"] = httpx.Response(200, content=b"x")
    await fetcher(origin).fetch("https://cdn.media.example/v.mp4", param="p")
    assert origin.requests[0].url.host == "2606:2800:220:1:248:1893:25c8:1946"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://internal.example/a.png", "private"),
        ("https://metadata.example/latest/meta-data/", "private"),
        ("https://rebind.example/a.png", "private"),
        ("https://mapped.example/a.png", "private"),
        ("https://other.example/a.png", "remote_allowed_hosts"),
        ("https://media.example.evil.test/a.png", "remote_allowed_hosts"),
        ("http://media.example/a.png", "https"),
        ("https://nowhere.media.example/a.png", "does not resolve"),
    ],
)
async def test_refused_before_any_connection(url: str, reason: str) -> None:
    origin = Origin()
    with pytest.raises(InvalidRequest, match=reason) as caught:
        await fetcher(origin).fetch(url, param="input[0].image_url")
    assert caught.value.param == "input[0].image_url"
    assert origin.requests == []


@pytest.mark.parametrize(
    "location",
    [
        "https://metadata.example/latest/meta-data/",
        "https://internal.example/x",
        "https://127.0.0.1/x",
        "http://media.example/x",
        "https://other.example/x",
    ],
)
async def test_every_redirect_hop_is_checked_again(location: str) -> None:
    origin = Origin()
    origin.routes["/go"] = httpx.Response(302, headers={"location": location})
    with pytest.raises(InvalidRequest):
        await fetcher(origin).fetch("https://media.example/go", param="p")
    assert len(origin.requests) == 1  # the redirect target was never contacted


async def test_a_safe_redirect_is_followed_and_loops_are_cut() -> None:
    origin = Origin()
    origin.routes["/old"] = httpx.Response(301, headers={"location": "/new.png"})
    origin.routes["/new.png"] = httpx.Response(200, content=PNG)
    assert (await fetcher(origin).fetch("https://media.example/old", param="p"))[0] == PNG
    origin.routes["/loop"] = httpx.Response(302, headers={"location": "/loop"})
    with pytest.raises(InvalidRequest, match="redirects"):
        await fetcher(origin).fetch("https://media.example/loop", param="p")


async def test_size_cap_by_header_and_by_stream() -> None:
    origin = Origin()
    origin.routes["/big"] = httpx.Response(200, content=bytes(5000))
    with pytest.raises(PayloadTooLarge) as caught:
        await fetcher(origin, max_part_bytes=4096).fetch("https://media.example/big", param="p")
    assert caught.value.http_status == 413

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield bytes(1024)

    origin.routes["/stream"] = httpx.Response(200, content=endless())  # no content-length
    with pytest.raises(PayloadTooLarge):
        await fetcher(origin, max_part_bytes=4096).fetch("https://media.example/stream", param="p")


async def test_timeout_and_error_statuses_are_400s() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    settings = MediaSettings(
        remote_fetch=True, remote_allowed_hosts=("media.example",), remote_timeout_s=0.05
    )
    slow_fetcher = RemoteFetcher(settings, resolver=resolve, transport=httpx.MockTransport(slow))
    with pytest.raises(InvalidRequest, match="did not arrive"):
        await slow_fetcher.fetch("https://media.example/a.png", param="p")
    origin = Origin()
    with pytest.raises(InvalidRequest, match="404"):
        await fetcher(origin).fetch("https://media.example/missing.png", param="p")


def test_public_address_classification() -> None:
    for private in (
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1%eth0",
        "fc00::1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "ff02::1",
    ):
        assert not is_public(private), private
    for public in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"):
        assert is_public(public), public


@pytest.fixture
async def fetching_gateway(
    tmp_path: Path, fake: FakeGemini
) -> AsyncIterator[tuple[Gateway, Origin]]:
    settings = make_settings(
        tmp_path / "cache",
        media={"remote_fetch": True, "remote_allowed_hosts": ["media.example"]},
    )
    app = make_app(settings, fake)
    origin = Origin()
    app.state["services"].media_fetcher = RemoteFetcher(
        settings.media, resolver=resolve, transport=httpx.MockTransport(origin.handler)
    )
    async with AsyncTestClient(app) as client:
        yield Gateway(client, fake), origin


async def test_remote_image_through_the_gateway_is_keyed_by_its_bytes(
    fetching_gateway: tuple[Gateway, Origin],
) -> None:
    gateway, origin = fetching_gateway
    origin.routes["/a.png"] = httpx.Response(
        200, content=PNG, headers={"content-type": "image/png"}
    )
    part = {"type": "image_url", "image_url": {"url": "https://media.example/a.png"}}
    fetched = await gateway.embed(model="gemini-embedding-2", input=[part], encoding_format="float")
    assert fetched.status_code == 200, fetched.text
    inline = await gateway.embed(
        model="gemini-embedding-2",
        input=[{"type": "image_url", "image_url": media.data_uri(PNG, "image/png")}],
        encoding_format="float",
    )
    assert gateway.cache_entries() == 1
    assert gateway.fake.items_received == 1
    [item] = gateway.fake.calls[0].items
    assert (item.parts[0].mime_type, item.parts[0].data) == ("image/png", PNG)
    want = unit(gateway.fake.vector_for_parts(list(item.parts)))
    assert np.allclose(inline.json()["data"][0]["embedding"], want, atol=1e-6)
    # A remote type that contradicts the bytes is refused like a declared one.
    origin.routes["/liar.png"] = httpx.Response(
        200, content=b"<html>", headers={"content-type": "image/png"}
    )
    liar = await gateway.embed(
        model="gemini-embedding-2",
        input=[{"type": "image_url", "image_url": "https://media.example/liar.png"}],
    )
    assert liar.status_code == 400
    assert liar.json()["error"]["param"] == "input[0].image_url"
