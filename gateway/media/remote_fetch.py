"""SSRF-safe fetching of `https://` media: allow-listed hosts, checked IPs, no sneaky redirects.

The fetcher resolves DNS itself, refuses any host that resolves to a non-public address
(loopback, private, link-local, carrier-grade NAT, multicast, reserved), then connects to the
address it checked (TLS still verifies the certificate for the host name). Every redirect hop is
checked again; bodies are capped at `max_part_bytes`; the whole fetch has a timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from collections.abc import Awaitable, Callable

import httpx

from gateway.config import MediaSettings
from gateway.errors import InvalidRequest, PayloadTooLarge

Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_REDIRECTS = 3


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public(address: str) -> bool:
    """Whether an address is globally routable unicast (not loopback, private, link-local...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class RemoteFetcher:
    """Fetches remote media for one gateway; `resolver` and `transport` are injectable for tests."""

    def __init__(
        self,
        settings: MediaSettings,
        *,
        resolver: Resolver = resolve_host,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._resolver = resolver
        self._transport = transport
        self._hosts = tuple(h.lower().rstrip(".") for h in settings.remote_allowed_hosts)

    def _allowed(self, host: str) -> bool:
        return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in self._hosts)

    async def fetch(self, url: str, *, param: str) -> tuple[bytes, str | None]:
        """(body, Content-Type) of `url`; a 400 (413 when too big) naming `param` on any refusal."""
        if not self.settings.remote_fetch:
            raise InvalidRequest(
                f"`{param}` is a remote URL, but remote fetching is off ([media] remote_fetch)",
                param=param,
            )
        try:
            async with asyncio.timeout(self.settings.remote_timeout_s):
                return await self._follow(url, param)
        except TimeoutError:
            raise InvalidRequest(
                f"`{param}`: the remote media did not arrive within "
                f"{self.settings.remote_timeout_s:g} s",
                param=param,
                code="fetch_failed",
            ) from None
        except httpx.HTTPError as exc:
            raise InvalidRequest(
                f"`{param}`: fetching the remote media failed ({type(exc).__name__})",
                param=param,
                code="fetch_failed",
            ) from None

    async def _follow(self, url: str, param: str) -> tuple[bytes, str | None]:
        async with httpx.AsyncClient(
            transport=self._transport, trust_env=False, follow_redirects=False
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                host, request = await self._checked_request(client, url, param)
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = urllib.parse.urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise InvalidRequest(
                            f"`{param}`: {host} answered HTTP {response.status_code}",
                            param=param,
                            code="fetch_failed",
                        )
                    body = await self._capped_body(response, param)
                    return body, response.headers.get("content-type")
                finally:
                    await response.aclose()
        raise InvalidRequest(
            f"`{param}`: more than {MAX_REDIRECTS} redirects", param=param, code="fetch_failed"
        )

    async def _checked_request(
        self, client: httpx.AsyncClient, url: str, param: str
    ) -> tuple[str, httpx.Request]:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.scheme.lower() != "https" or not host:
            raise InvalidRequest(f"`{param}`: only https:// URLs are fetched", param=param)
        if not self._allowed(host):
            raise InvalidRequest(
                f"`{param}`: the host {host} is not in [media] remote_allowed_hosts", param=param
            )
        port = parts.port or 443
        try:
            addresses = await self._resolver(host, port)
        except OSError:
            raise InvalidRequest(
                f"`{param}`: the host {host} does not resolve", param=param, code="fetch_failed"
            ) from None
        if not addresses or not all(is_public(a) for a in addresses):
            raise InvalidRequest(
                f"`{param}`: the host {host} resolves to a private, loopback or link-local "
                "address; the gateway does not fetch from those",
                param=param,
            )
        ip = addresses[0]
        netloc = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        target = urllib.parse.urlunsplit(("https", netloc, parts.path or "/", parts.query, ""))
        request = client.build_request(
            "GET",
            target,
            headers={
                "host": parts.netloc.rsplit("@", 1)[-1],
                "accept": "*/*",
                "accept-encoding": "identity",
            },
            extensions={"sni_hostname": host},
        )
        return host, request

    async def _capped_body(self, response: httpx.Response, param: str) -> bytes:
        cap = self.settings.max_part_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise PayloadTooLarge(
                f"`{param}`: the remote media is {int(declared):,} bytes; at most {cap:,} "
                "are allowed per media part ([media] max_part_bytes)",
                param=param,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise PayloadTooLarge(
                    f"`{param}`: the remote media is over {cap:,} bytes ([media] max_part_bytes)",
                    param=param,
                )
            chunks.append(chunk)
        return b"".join(chunks)
