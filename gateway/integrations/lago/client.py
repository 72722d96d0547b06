"""The one place Lago's HTTP API is called from: pooled, explicit timeouts, typed errors."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import orjson

from gateway.integrations.pooling import SpreadTransport

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class LagoError(Exception):
    """Base of what the Lago client raises."""


class LagoApiError(LagoError):
    """Lago answered with an error status; ``body`` is its (Lago-shaped) error body."""

    def __init__(self, status: int, body: dict[str, Any], retry_after: float | None = None) -> None:
        super().__init__(f"Lago answered {status}: {body.get('code') or body.get('error')}")
        self.status = status
        self.body = body
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES


class LagoUnavailable(LagoError):
    """Lago could not be reached, or did not answer in time."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        return body
    return {"status": response.status_code, "error": response.reason_phrase or "error"}


class LagoClient:
    """Async client for Lago's REST API (``{base_url}/api/v1``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 64,
        idempotent_retries: int = 2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._idempotent_retries = idempotent_retries
        self._http = httpx.AsyncClient(
            base_url=f"{self.base_url}/api/v1",
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            # Many connections in one httpcore pool cost more CPU than the requests.
            transport=transport or SpreadTransport(max_connections),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
    ) -> httpx.Response:
        """One raw request; transport failures become LagoUnavailable, nothing else is raised."""
        try:
            return await self._http.request(method, path, content=body, params=params)
        except httpx.TimeoutException as exc:
            raise LagoUnavailable(f"timeout: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise LagoUnavailable(f"unreachable: {type(exc).__name__}") from exc

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A JSON call; errors raise LagoApiError or LagoUnavailable. GETs are retried briefly."""
        body = None if json is None else orjson.dumps(json)
        attempts = 1 + (self._idempotent_retries if method == "GET" else 0)
        for attempt in range(attempts):
            try:
                return await self._call_once(method, path, body, params)
            except (LagoUnavailable, LagoApiError) as exc:
                transient = isinstance(exc, LagoUnavailable) or exc.retryable
                if not transient or attempt + 1 == attempts:
                    raise
                await asyncio.sleep(0.2 * (2**attempt) + random.random() * 0.1)
        raise AssertionError("unreachable")

    async def _call_once(
        self, method: str, path: str, body: bytes | None, params: Any
    ) -> dict[str, Any]:
        response = await self.send(method, path, body=body, params=params)
        if response.status_code >= 400:
            raise LagoApiError(
                response.status_code, _error_body(response), retry_after_seconds(response)
            )
        if not response.content:
            return {}
        data = orjson.loads(response.content)
        return data if isinstance(data, dict) else {"data": data}

    async def _cheap_read(self) -> int | None:
        """The status of a cheap read (one billable metric) within two seconds, or None."""
        try:
            response = await self._http.get(
                "/billable_metrics", params={"per_page": 1}, timeout=2.0
            )
        except httpx.HTTPError:
            return None
        return response.status_code

    async def probe(self) -> bool:
        """Whether Lago answers a cheap read with success within two seconds."""
        status = await self._cheap_read()
        return status is not None and status < 400

    async def ping(self) -> str:
        """Lago's state as the gateway sees it: ok, unauthorized, failing or unreachable."""
        status = await self._cheap_read()
        if status in (401, 403):
            return "unauthorized"
        return "ok" if status is not None and status < 500 else "unreachable"
