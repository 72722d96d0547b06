"""Where deliveries may go: http(s) URLs whose host resolves to public addresses only (SSRF).

An address is public when it is globally routable and nothing in it leads to a non-public
IPv4 address: IPv4-mapped (``::ffff:0:0/96``) and NAT64 (``64:ff9b::/96``) addresses are
judged by their IPv4 address, 6to4 (``2002::/16``) by its IPv4 address, Teredo
(``2001::/32``) by its server's and its (obfuscated) client's, an ISATAP interface id
(``…:0:5efe:a.b.c.d``) by its IPv4 address; IPv4-compatible (``::/96``, deprecated) and
local-use NAT64 (``64:ff9b:1::/48``) addresses are refused outright, and so are loopback,
link-local, unique-local, site-local, multicast, reserved and unspecified addresses of
either family (and IPv4's private, shared 100.64/10 and documentation ranges).

The check is made twice: when an endpoint is registered (a 422 naming ``url``), and for
every connection the sender opens: ``PublicOnlyResolver`` is the sender's aiohttp resolver,
so the host is resolved once per connection, every address checked, and aiohttp connects
only to the addresses it returns. A DNS answer that changes between the check and the
connection (rebinding) cannot redirect a delivery; aiohttp still sends the URL's host in
``Host`` and checks TLS (SNI and the certificate) against the hostname. aiohttp does not
resolve an IP literal, so ``literal_refusal`` checks those.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

RESOLVE_TIMEOUT_SECONDS = 5.0
NON_PUBLIC = "the URL points at a loopback, link-local, private or reserved address"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses to connect to, in the order to try them.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_ISATAP = 0x00005EFE  # the upper half of an ISATAP interface id (u and g bits masked)
_LOW_32 = 0xFFFFFFFF


class DestinationRefused(ValueError):
    """The URL is not http(s), or its host is (or resolves to) a non-public address."""


def _public_v4(address: ipaddress.IPv4Address) -> bool:
    return address.is_global and not address.is_multicast and not address.is_reserved


def _embedded_v4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses a 6to4, Teredo or ISATAP address leads to."""
    found = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    interface_id = int(address) & 0xFFFFFFFFFFFFFFFF
    if (interface_id >> 32) & ~0x03000000 == _ISATAP:
        found.append(ipaddress.IPv4Address(interface_id & _LOW_32))
    return found


def is_public(address: Address) -> bool:
    """True when ``address``, and any IPv4 address it embeds or maps to, is public."""
    if isinstance(address, ipaddress.IPv4Address):
        return _public_v4(address)
    if address.ipv4_mapped is not None:
        return _public_v4(address.ipv4_mapped)
    if address in _COMPATIBLE or address in _NAT64_LOCAL:
        return False
    if address in _NAT64:  # before the rest: Python counts all of ::/8 as reserved
        return _public_v4(ipaddress.IPv4Address(int(address) & _LOW_32))
    if (
        not address.is_global
        or address.is_multicast
        or address.is_site_local
        or address.is_reserved
    ):
        return False
    return all(_public_v4(embedded) for embedded in _embedded_v4(address))


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
    """Every address ``host`` resolves to, in getaddrinfo's order (an IP literal: itself)."""
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
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refuse_non_public(host: str, addresses: Iterable[str]) -> None:
    """DestinationRefused unless there are addresses and every one of them is public."""
    checked = 0
    for address in addresses:
        checked += 1
        if not is_public(ipaddress.ip_address(address.split("%")[0])):
            raise DestinationRefused(NON_PUBLIC)
    if not checked:
        raise DestinationRefused(f"the host {host!r} does not resolve")


async def check_public(url: str, resolver: Resolver = resolve) -> None:
    """Raise DestinationRefused unless every address of the URL's host is public."""
    host, port = split_url(url)
    refuse_non_public(host, await resolver(host, port))


@functools.lru_cache(maxsize=4096)
def literal_refusal(url: str) -> str | None:
    """Why a URL whose host is an IP literal may not be reached (None: it may, or no literal)."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    return None if is_public(address) else NON_PUBLIC


class PublicOnlyResolver(AbstractResolver):
    """The sender's aiohttp resolver: only checked addresses, in the resolver's order.

    ``allow_private`` (``GATEWAY_RELAY_ALLOW_PRIVATE``, for development and tests) skips the
    check but still connects to the resolved addresses. ``resolver`` is for tests.
    """

    def __init__(self, *, allow_private: bool = False, resolver: Resolver = resolve) -> None:
        self.allow_private = allow_private
        self.resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.resolver(host, port)
        if self.allow_private:
            if not addresses:
                raise DestinationRefused(f"the host {host!r} does not resolve")
        else:
            refuse_non_public(host, addresses)
        return [_result(host, address, port) for address in addresses]

    async def close(self) -> None:
        return None


def _result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(
        hostname=host, host=address, port=port, family=family, proto=0, flags=socket.AI_NUMERICHOST
    )
