"""Where deliveries may go: http(s) URLs whose host resolves to public addresses only (SSRF)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from urllib.parse import urlsplit

RESOLVE_CACHE_SECONDS = 60.0
RESOLVE_TIMEOUT_SECONDS = 5.0


class DestinationRefused(ValueError):
    """The URL is not http(s), or its host is (or resolves to) a non-public address."""


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def split_url(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL, or DestinationRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused("not a valid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("only http and https URLs are allowed")
    if not parts.hostname:
        raise DestinationRefused("the URL has no host")
    if parts.username or parts.password:
        raise DestinationRefused("credentials in the URL are not allowed")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError) as exc:
        raise DestinationRefused(f"the host {host!r} does not resolve") from exc
    return sorted({str(info[4][0]) for info in infos})


async def check_public(url: str) -> None:
    """Raise DestinationRefused unless every address of the URL's host is public."""
    host, port = split_url(url)
    addresses = await resolve(host, port)
    if not addresses:
        raise DestinationRefused(f"the host {host!r} does not resolve")
    for address in addresses:
        if not _is_public(ipaddress.ip_address(address.split("%")[0])):
            raise DestinationRefused(
                "the URL points at a loopback, link-local, private or reserved address"
            )


class DestinationGuard:
    """The same check at delivery time (DNS can change after registration), cached per host."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def refusal(self, url: str) -> str | None:
        """None when ``url`` may be called now, else the reason it may not."""
        if self.allow_private:
            return None
        now = time.monotonic()
        cached = self._cache.get(url)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            await check_public(url)
            reason = None
        except DestinationRefused as exc:
            reason = str(exc)
        self._cache[url] = (now + RESOLVE_CACHE_SECONDS, reason)
        return reason
