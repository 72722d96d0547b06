"""A subscriber for tests: verifies every delivery with ``standardwebhooks``, dedups on
``webhook-id``."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.types import Receive, Scope, Send


@dataclass
class Received:
    message_id: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def envelope(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


# (status, headers, body) to answer the n-th request (0-based) to a path; 2xx means "verify
# and keep".
Answer = tuple[int, dict[str, str], bytes]
Script = Callable[[str, int], Answer]


@dataclass
class Receiver:
    """An ASGI app; ``down`` refuses connections, ``answer`` scripts other replies."""

    secrets: list[str] = field(default_factory=list)
    down: bool = False
    answer: Script | None = None
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    bad_signatures: int = 0
    requests: Counter[str] = field(default_factory=Counter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        await self.before_answer(scope["path"])
        status, reply_headers, reply = self.handle(scope["path"], headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in reply_headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    async def before_answer(self, path: str) -> None:
        """A hook for slow subscribers; the request body has been read in full."""

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if self.down:
            self.refused += 1
            raise httpx.ConnectError("connection refused (receiver down)")
        index = self.requests[path]
        self.requests[path] += 1
        if self.answer is not None:
            status, reply_headers, reply = self.answer(path, index)
            if not 200 <= status < 300:
                return status, reply_headers, reply
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                break
            except WebhookVerificationError:
                continue
        else:
            if self.secrets:
                self.bad_signatures += 1
                return 400, {}, b"bad signature"
        self.received.append(Received(headers["webhook-id"], path, headers, body, time.time()))
        return 204, {}, b""

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self)

    @property
    def counts(self) -> Counter[str]:
        return Counter(r.message_id for r in self.received)

    @property
    def unique_ids(self) -> set[str]:
        return set(self.counts)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]
