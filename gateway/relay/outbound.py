"""The sender's HTTP side: pooled clients, Standard Webhooks signatures, Retry-After.

httpcore's pool scans every connection for each request it assigns (quadratic in the pool
size, encode/httpcore#1035), so many connections in one pool cost more CPU than the
requests themselves. The sender spreads its connections over small pools instead.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpcore
import httpx
from standardwebhooks import Webhook

USER_AGENT = "billing-gateway-relay/0.1"
CONNECTIONS_PER_POOL = 2
RESPONSE_KEEP_BYTES = 2048
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


class Pools:
    """``size`` connections in httpx pools of ``CONNECTIONS_PER_POOL``.

    Each request takes a free slot (a pool with room), so no request waits in one pool while
    another has an idle connection; the most recently freed slot first, so a light load keeps
    reusing a few warm connections instead of cycling through all of them. Requests go
    straight to httpx's pooled transport: the client layer (auth, cookies, redirects, URL
    merging, proxies from the environment) is work the sender never needs, a fifth of the
    CPU per request, and a redirect or proxy would lead past the destination check.
    Connections are opened by ``network`` (``PublicOnlyBackend``: the checked address).
    An injected transport (tests: an ASGI subscriber) replaces the pools.
    """

    def __init__(
        self,
        size: int,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        network: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.timeout = timeout
        self._timeouts = httpx.Timeout(timeout).as_dict()
        per_pool = min(size, CONNECTIONS_PER_POOL)
        if transport is not None:
            self.transports = [transport]
            per_pool = size
        else:
            limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
            count = max(1, -(-size // per_pool))
            tls = httpx.create_ssl_context()  # one context: loading CA certificates is slow
            self.transports = [_Transport(limits, tls, network) for _ in range(count)]
        self._slots = deque(i for i in range(len(self.transports)) for _ in range(per_pool))

    async def post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], str]:
        """POST within the timeout (in all); (status, the headers the sender reads, 2 KB of body)."""
        request = httpx.Request(
            "POST",
            url,
            content=body,
            headers={**headers, "user-agent": USER_AGENT, "content-type": "application/json"},
            extensions={"timeout": self._timeouts},
        )
        # More callers than slots (not the sender's case) share the first pool.
        slot = self._slots.pop() if self._slots else None
        try:
            async with asyncio.timeout(self.timeout):
                transport = self.transports[slot or 0]
                response = await transport.handle_async_request(request)
                try:
                    kept = await read_head(response)
                finally:
                    await response.aclose()
        finally:
            if slot is not None:
                self._slots.append(slot)
        retry_after = response.headers.get("retry-after")
        return response.status_code, ({"retry-after": retry_after} if retry_after else {}), kept

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.aclose()


class _Transport(httpx.AsyncHTTPTransport):
    """httpx's transport on a pool that opens its connections through ``network``."""

    def __init__(
        self,
        limits: httpx.Limits,
        tls: ssl.SSLContext,
        network: httpcore.AsyncNetworkBackend | None,
    ) -> None:
        super().__init__(limits=limits, verify=tls, trust_env=False)
        # httpx has no parameter for the network backend: the same pool again, with it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=tls,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=network,
        )


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


async def read_head(response: httpx.Response) -> str:
    """The first 2 KB of the response body, decoded leniently; the rest is not read."""
    kept = b""
    async for chunk in response.aiter_raw():
        kept += chunk
        if len(kept) >= RESPONSE_KEEP_BYTES:
            break
    # PostgreSQL text cannot hold NUL: a subscriber's binary answer must not block the record.
    return kept[:RESPONSE_KEEP_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
