"""The sender's HTTP side: pooled connections, Standard Webhooks signatures, Retry-After.

Deliveries go out through aiohttp: a POST costs about a seventh of the CPU it costs through
httpx (measured: 170 µs against 1.15 ms), and the relay sends as many requests as the
gateway receives webhooks. Lago and Stripe calls stay on httpx, where tests pin their wire
contract through its transports.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import httpx
from standardwebhooks import Webhook

from gateway.relay.destinations import (
    DestinationRefused,
    PublicOnlyResolver,
    Resolver,
    literal_refusal,
    resolve,
)

USER_AGENT = "billing-gateway-relay/0.1"
RESPONSE_KEEP_BYTES = 2048
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


class Pools:
    """``size`` kept-alive connections to subscribers; every one opened to a checked address.

    aiohttp's connector, with ``PublicOnlyResolver`` resolving (and checking) the host for
    each new connection, no DNS cache, no proxies from the environment, no redirects
    followed (a redirect would lead past the check), no cookies, bodies left compressed.
    An injected httpx transport (tests: an ASGI subscriber) replaces the network; ``tls``
    (tests: a local certificate authority) the system's trusted certificates.
    """

    def __init__(
        self,
        size: int,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        allow_private: bool = False,
        resolver: Resolver = resolve,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.tls = tls or ssl.create_default_context()  # one context: loading CAs is slow
        self.size = size
        self.allow_private = allow_private
        self.resolver = resolver
        self.transport = transport
        self._session: aiohttp.ClientSession | None = None  # made in the running loop

    async def post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], str]:
        """POST within the timeout (in all): status, the headers the sender reads, 2 KB of body."""
        headers = {**headers, "user-agent": USER_AGENT, "content-type": "application/json"}
        if self.transport is not None:
            return await self._post_through(self.transport, url, body, headers)
        if not self.allow_private and (refusal := literal_refusal(url)):
            raise DestinationRefused(refusal)
        async with asyncio.timeout(self.timeout):
            async with self._sessions().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                kept = await _read_head(response.content)
                retry_after = response.headers.get("retry-after")
                status = response.status
        return status, ({"retry-after": retry_after} if retry_after else {}), _text(kept)

    def _sessions(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.size,
                limit_per_host=0,
                use_dns_cache=False,
                ssl=self.tls,
                resolver=PublicOnlyResolver(
                    allow_private=self.allow_private, resolver=self.resolver
                ),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                skip_auto_headers=("User-Agent", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
            )
        return self._session

    async def _post_through(
        self, transport: httpx.AsyncBaseTransport, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], str]:
        timeouts = httpx.Timeout(self.timeout).as_dict()
        request = httpx.Request(
            "POST", url, content=body, headers=headers, extensions={"timeout": timeouts}
        )
        async with asyncio.timeout(self.timeout):
            response = await transport.handle_async_request(request)
            try:
                kept = b""
                async for chunk in response.aiter_raw():
                    kept += chunk
                    if len(kept) >= RESPONSE_KEEP_BYTES:
                        break
            finally:
                await response.aclose()
        retry_after = response.headers.get("retry-after")
        return (
            response.status_code,
            ({"retry-after": retry_after} if retry_after else {}),
            _text(kept),
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self.transport is not None:
            await self.transport.aclose()


async def _read_head(content: aiohttp.StreamReader) -> bytes:
    """Up to the first 2 KB of a response body; the rest is not read."""
    kept = b""
    while len(kept) < RESPONSE_KEEP_BYTES:
        chunk = await content.read(RESPONSE_KEEP_BYTES - len(kept))
        if not chunk:
            break
        kept += chunk
    return kept


def _text(kept: bytes) -> str:
    # PostgreSQL text cannot hold NUL: a subscriber's binary answer must not block the record.
    return kept[:RESPONSE_KEEP_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


class Signer:
    """``webhook-signature`` values: one ``v1,…`` per live secret, space-separated."""

    def __init__(self) -> None:
        self._hooks: dict[str, Webhook] = {}

    def sign(self, secrets: list[str], message_id: str, timestamp: int, body: str) -> str:
        moment = datetime.fromtimestamp(timestamp, UTC)
        signatures = []
        for secret in secrets:
            hook = self._hooks.get(secret)
            if hook is None:
                hook = self._hooks[secret] = Webhook(secret)
            signatures.append(hook.sign(message_id, moment, body))
        return " ".join(signatures)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(max(0.0, moment.timestamp() - now), MAX_RETRY_AFTER_SECONDS)
