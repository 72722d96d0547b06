"""Invoice files (PDFs) fetched from Lago's ``file_url`` and streamed on, never buffered whole.

Self-hosted Lago serves files from its own host (Active Storage, redirecting to the
storage service), which is on the private network: the gateway is the only way out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from gateway.errors import UpstreamError, UpstreamUnavailable

CHUNK_BYTES = 64 * 1024


@dataclass
class OpenFile:
    """A file being downloaded: its content type and length (when known) and its bytes."""

    content_type: str
    content_length: str | None
    chunks: AsyncIterator[bytes]


async def open_file(
    url: str, *, wait_seconds: float = 30.0, transport: httpx.AsyncBaseTransport | None = None
) -> OpenFile:
    """Start downloading ``url``; errors before the first byte are raised here, as 502/503."""
    if not url.startswith(("http://", "https://")):
        raise UpstreamError("the invoice file URL is not http(s)", code="invalid_file_url")
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(wait_seconds, connect=min(wait_seconds, 5.0)),
        follow_redirects=True,
        transport=transport,
    )
    try:
        response = await client.send(client.build_request("GET", url), stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        raise UpstreamUnavailable(f"invoice file unreachable ({type(exc).__name__})") from exc
    if response.status_code != 200:
        await response.aclose()
        await client.aclose()
        raise UpstreamError(
            f"the invoice file answered {response.status_code}", code="invoice_file_unavailable"
        )

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes(CHUNK_BYTES):
                yield chunk
        finally:
            await response.aclose()
            await client.aclose()

    # The length is only passed on when the bytes go through unchanged (no decoding).
    encoded = "content-encoding" in response.headers
    length = None if encoded else response.headers.get("content-length")
    return OpenFile(response.headers.get("content-type", "application/pdf"), length, chunks())
