"""The sender's HTTP side: pooled connections, Standard Webhooks signatures, Retry-After."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpcore
import httpx
from standardwebhooks import Webhook

from gateway.integrations.pooling import SpreadTransport

USER_AGENT = "billing-gateway-relay/0.1"
RESPONSE_KEEP_BYTES = 2048
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


class Pools:
    """``size`` kept-alive connections (``SpreadTransport``: small pools, slot per request).

    Requests go straight to httpx's pooled transport: the client layer (auth, cookies,
    redirects, URL merging, proxies from the environment) is work the sender never needs, a
    fifth of the CPU per request, and a redirect or proxy would lead past the destination
    check. Connections are opened by ``network`` (``PublicOnlyBackend``: the checked
    address). An injected transport (tests: an ASGI subscriber) replaces the pools.
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
        self.transport = transport or SpreadTransport(size, network=network)

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
        async with asyncio.timeout(self.timeout):
            response = await self.transport.handle_async_request(request)
            try:
                kept = await read_head(response)
            finally:
                await response.aclose()
        retry_after = response.headers.get("retry-after")
        return response.status_code, ({"retry-after": retry_after} if retry_after else {}), kept

    async def aclose(self) -> None:
        await self.transport.aclose()


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
