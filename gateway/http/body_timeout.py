"""Request bodies must keep arriving: a stalled or endless upload is answered 408 and closed.

uvicorn has no body timeout: a client that declares ``Content-Length: 100``, sends 9 bytes
and falls silent holds a connection and a task for as long as it likes. ``BodyReadTimeout``
wraps ``receive``: while the body is incomplete, each wait for the next chunk is bounded by
``chunk_seconds``, and all of them together by ``total_seconds`` from the first read. Past
either, if no response has started, the client gets a 408 in the gateway's error shape with
``Connection: close`` (uvicorn then closes the connection); the application's own reader
gets ``RequestTimeout`` and whatever it sends afterwards is dropped.

No timer per request: a timer costs 3 µs on uvloop (``asyncio.timeout`` 6 µs), a tenth of
a small request's CPU in this process. A read in progress is put in a set instead, and one
sweeper task per process looks at the set ``SWEEPS`` times per bound (at most once a
second) and cancels the reads past their deadline: a timeout fires up to one sweep late.
Once the body is complete, ``receive`` is the server's own (waiting for a disconnect is not
bounded).
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import RequestTimeout, rendered
from gateway.logging import get_logger

log = get_logger(__name__)
SWEEPS = 8
MAX_SWEEP_SECONDS = 1.0
# The sweeper ends after this many sweeps with nothing to watch; the next read starts another.
IDLE_SWEEPS = 64


class BodyReadTimeout:
    """ASGI middleware: 408 and close when a request body stalls or takes too long."""

    def __init__(self, app: ASGIApp, *, chunk_seconds: float, total_seconds: float) -> None:
        self.app = app
        self.chunk_seconds = chunk_seconds
        self.total_seconds = total_seconds
        self.sweep_seconds = min(MAX_SWEEP_SECONDS, min(chunk_seconds, total_seconds) / SWEEPS)
        self.waiting: set[_Reading] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sweeper: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reading = _Reading(self, receive, send)
        try:
            await self.app(scope, reading.receive, reading.send)
        except Exception:
            if not reading.expired:
                raise
            # The reader's RequestTimeout (or what the app made of it) after the 408: handled.

    def current_task(self) -> asyncio.Task[object] | None:
        """The task reading (``asyncio.current_task`` given the loop: a third of the cost)."""
        task = asyncio.current_task(self.loop) if self.loop is not None else None
        if task is None:  # the first read, or a new event loop (tests run several)
            self.loop = asyncio.get_running_loop()
            self.sweeper = None
            task = asyncio.current_task(self.loop)
        return task

    def start_sweeper(self) -> None:
        if self.loop is not None:
            self.sweeper = self.loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        idle = 0
        try:
            while idle < IDLE_SWEEPS:
                await asyncio.sleep(self.sweep_seconds)
                idle = 0 if self.waiting else idle + 1
                now = time.monotonic()
                for reading in [r for r in self.waiting if r.until <= now]:
                    reading.expire_wait()
        finally:
            if self.sweeper is asyncio.current_task():
                self.sweeper = None


class _Reading:
    """One request's ``receive`` with deadlines, and ``send`` that knows whether it started."""

    __slots__ = (
        "_receive",
        "_send",
        "answered",
        "cancelling",
        "complete",
        "deadline",
        "expired",
        "guard",
        "started",
        "task",
        "until",
    )

    def __init__(self, guard: BodyReadTimeout, receive: Receive, send: Send) -> None:
        self.guard = guard
        self._receive = receive
        self._send = send
        self.deadline = 0.0
        self.until = 0.0
        self.task: asyncio.Task[object] | None = None
        self.cancelling = 0
        self.complete = False
        self.started = False
        self.expired = False
        self.answered = False

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()
        if self.expired:
            raise RequestTimeout()
        guard = self.guard
        now = time.monotonic()
        if not self.deadline:
            self.deadline = now + guard.total_seconds
        until = now + guard.chunk_seconds
        self.until = until if until < self.deadline else self.deadline
        task = self.task = guard.current_task()
        self.cancelling = task.cancelling() if task is not None else 0
        guard.waiting.add(self)
        if guard.sweeper is None:
            guard.start_sweeper()
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            # Ours (the sweeper's) alone becomes a timeout; any other cancellation goes on.
            if not self.expired or task is None or task.uncancel() > self.cancelling:
                raise
            await self._answer()
            raise RequestTimeout() from None
        finally:
            guard.waiting.discard(self)
        if not message.get("more_body", False):
            self.complete = True
        return message

    def expire_wait(self) -> None:
        """Called by the sweeper: the wait is past its deadline."""
        self.guard.waiting.discard(self)
        if self.task is not None and not self.expired:
            self.expired = True
            self.task.cancel()

    async def send(self, message: Message) -> None:
        if self.answered:
            return  # the 408 was the answer
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def _answer(self) -> None:
        log.info("http.body.read_timeout", answered=not self.started)
        if self.started:
            return
        self.answered = True
        headers, body = rendered(RequestTimeout(), (b"connection", b"close"))
        await self._send({"type": "http.response.start", "status": 408, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})
