"""Connection pools that stay cheap with many connections.

httpcore's pool looks at every one of its connections for each request it assigns and for
each response it closes (``has_expired`` polls each idle socket: quadratic in the pool size,
encode/httpcore#1035). With 16 or more connections in one pool that costs more CPU than the
requests themselves. ``SpreadTransport`` keeps the same number of connections in small
pools instead: each request takes a free slot (a pool with room), the most recently freed
first, so a light load keeps reusing a few warm connections.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable

import httpx

CONNECTIONS_PER_POOL = 2


class SpreadTransport(httpx.AsyncBaseTransport):
    """``connections`` kept-alive connections in httpx pools of ``per_pool``.

    A slot is held from the request until its response is closed, so no request queues in
    one pool while another has an idle connection. More requests than slots (not the
    callers' case: they bound their own concurrency) share the first pool and wait there.
    """

    def __init__(
        self,
        connections: int,
        *,
        per_pool: int = CONNECTIONS_PER_POOL,
    ) -> None:
        per_pool = max(1, min(connections, per_pool))
        count = max(1, -(-connections // per_pool))
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        tls = httpx.create_ssl_context()  # one context: loading CA certificates is slow
        self._pools = [
            httpx.AsyncHTTPTransport(limits=limits, verify=tls, trust_env=False)
            for _ in range(count)
        ]
        self._slots = deque(i for i in range(count) for _ in range(per_pool))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        slot = self._slots.pop() if self._slots else None
        try:
            response = await self._pools[slot or 0].handle_async_request(request)
        except BaseException:
            if slot is not None:
                self._slots.append(slot)
            raise
        if slot is None:
            return response
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Releasing(response.stream, lambda: self._slots.append(slot)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _Releasing(httpx.AsyncByteStream):
    """A response body that frees its slot when closed (once)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
