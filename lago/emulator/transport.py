"""``FaultyTransport``: an httpx transport for the in-process emulator that fails the way a
network does.

``httpx.ASGITransport`` enforces no timeout and has no connection to lose. Wrapped in
``FaultyTransport`` it raises ``httpx.ReadTimeout`` when the request's read timeout passes
(the emulator goes on and finishes the request, as a server does), ``httpx.ConnectError``
for a refused connection and ``httpx.RemoteProtocolError`` for one dropped unanswered.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from .faults import ConnectionFault, Fault


class FaultyTransport(httpx.AsyncBaseTransport):
    """Wraps ``inner`` (usually ``httpx.ASGITransport(app=create_app(state))``)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self._running: set[asyncio.Task[httpx.Response]] = set()

    @classmethod
    def for_app(cls, app: Any) -> FaultyTransport:
        """A ``FaultyTransport`` over ``httpx.ASGITransport(app=app)``."""
        return cls(httpx.ASGITransport(app=app))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward ``request``; network failures become httpx's own exceptions."""
        task = asyncio.ensure_future(self._forward(request))
        self._running.add(task)
        task.add_done_callback(self._finished)
        timeout = request.extensions.get("timeout", {}).get("read")
        try:
            # shield: the client stops waiting, the server does not stop working.
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise httpx.ReadTimeout("timed out", request=request) from None

    async def _forward(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except ConnectionFault as exc:
            if exc.fault is Fault.REFUSE:
                message = "[Errno 111] Connection refused"
                raise httpx.ConnectError(message, request=request) from exc
            message = "Server disconnected without sending a response."
            raise httpx.RemoteProtocolError(message, request=request) from exc

    def _finished(self, task: asyncio.Task[httpx.Response]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a request nobody waits for any more may fail

    async def aclose(self) -> None:
        """Stop requests still running after their client gave up, then close ``inner``."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self.inner.aclose()
