"""ASGI middleware in front of ``/api/v1``: injected faults, API-key check, status counts.

Faults are drawn before the handler runs, so a faulted request leaves the state untouched,
except ``fail_after_commit`` which runs the handler and then answers 500 anyway. What a
proxy does (dropped connections, 413, its error pages) comes before Lago's own latency.
"""

from __future__ import annotations

import asyncio
import math

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body
from .faults import Fault
from .proxy import answer_page, drop_connection, limit_body
from .state import EmulatorState

_JSON = (b"content-type", b"application/json")


def route_path(scope: Scope) -> str:
    """The path inside this app, also when it is mounted under a prefix (``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def answer(send: Send, status: int, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send Lago's error body for ``status``."""
    body = orjson.dumps(error_body(status))
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _discard(message: Message) -> None:
    """A ``send`` that drops the response: the connection 'broke' after the commit."""


class Guard:
    """Faults, auth and counters for every ``/api/v1`` request."""

    def __init__(self, app: ASGIApp, state: EmulatorState, api_key: str) -> None:
        self.app = app
        self.state = state
        self.api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not route_path(scope).startswith("/api/v1"):
            await self.app(scope, receive, send)
            return
        counts = self.state.requests_by_status

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                counts[message["status"]] += 1
            await send(message)

        await self._handle(scope, receive, counting_send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        faults = self.state.faults
        fault = faults.draw()
        if fault is not Fault.NONE:
            self.state.faults_injected[fault.value] += 1
        if fault is Fault.RESET or fault is Fault.REFUSE:
            await drop_connection(scope, fault)
            return
        if faults.max_body_bytes > 0:
            limited = await limit_body(scope, receive, faults.max_body_bytes)
            if limited is None:
                self.state.faults_injected["body_too_large"] += 1
                await answer_page(send, 413)
                return
            receive = limited
        if fault is Fault.PROXY_ERROR:
            await answer_page(send, faults.proxy_status())
            return
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        await self._lago(scope, receive, send, fault)

    async def _lago(self, scope: Scope, receive: Receive, send: Send, fault: Fault) -> None:
        faults = self.state.faults
        if fault is Fault.OUTAGE:
            retry = str(math.ceil(faults.outage_remaining())).encode()
            await answer(send, 503, [(b"retry-after", retry)])
        elif fault is Fault.TIMEOUT:
            await asyncio.sleep(faults.hang_seconds)
            await answer(send, 504)
        elif fault is Fault.RATE_LIMIT:
            await answer(send, 429, self._rate_limit_headers())
        elif fault is Fault.ERROR:
            await answer(send, 500)
        elif not self._authorized(scope):
            await answer(send, 401)
        elif fault is Fault.FAIL_AFTER_COMMIT:
            await self.app(scope, receive, _discard)
            await answer(send, 500)
        else:
            await self.app(scope, receive, send)

    def _rate_limit_headers(self) -> list[tuple[bytes, bytes]]:
        seconds = str(self.state.faults.retry_after_seconds).encode()
        return [
            (b"retry-after", seconds),
            (b"x-ratelimit-limit", b"500"),
            (b"x-ratelimit-remaining", b"0"),
            (b"x-ratelimit-reset", seconds),
        ]

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                parts = value.split(b" ")
                # Lago reads ``header.split(" ")[1]`` without checking the scheme word.
                return len(parts) > 1 and parts[1] == self.api_key
        return False
