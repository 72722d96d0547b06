"""The gateway's door: what every request passes before its route, and the ingest hot path.

Every HTTP request passes, outermost first: the body read timeout (``body_timeout``: 408 and
close when a body stalls), the request id (``logging.RequestIdMiddleware``: kept from
``X-Request-Id`` or minted, echoed back, on logs and audit rows) and the body limit
(``BodyLimit``: 413 for a body over ``GATEWAY_BODY_MAX_BYTES``, declared or streamed). Then
the paths of ``fast_routes`` are answered straight from the ASGI scope, and everything else
goes to FastAPI.

A single-event ``POST /api/v1/events`` costs the gateway about as much CPU in framework
layers (middlewares, route matching across every router, dependency resolution) as in
validating and storing the event, hence the fast routes: the key and scope are checked by
the functions behind the FastAPI dependencies (``auth.service``), and an error is answered
as FastAPI's handlers answer it (``error_of``, ``errors.rendered``). These paths with
another method go through FastAPI as usual; the FastAPI routes of the same paths stay in
the app for the OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth.service import Principal, authenticate, authorize
from gateway.auth.service import Scope as KeyScope
from gateway.body_timeout import BodyReadTimeout
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, rendered
from gateway.logging import RequestIdMiddleware, get_logger
from gateway.runtime import Runtime

log = get_logger(__name__)

Handler = Callable[[bytes, Runtime, Principal], Awaitable[Any]]


@dataclass(frozen=True)
class FastRoute:
    """``POST path`` with a key holding ``scope``: ``handler(body, runtime, principal)``
    returns the JSON content of a 200, or raises a ``GatewayError``."""

    path: str
    scope: KeyScope
    handler: Handler


class _Disconnected(Exception):
    """The client went away before its body arrived: nothing to answer."""


def error_of(exc: Exception) -> GatewayError:
    """The error an exception is answered with: itself, or (logged) a 500."""
    if isinstance(exc, GatewayError):
        return exc
    log.exception("app.unhandled_error", error=type(exc).__name__)
    return GatewayError()


def error_response(exc: Exception) -> Response:
    """FastAPI's answer to an exception, as the fast routes answer it."""
    error = error_of(exc)
    headers, body = rendered(error)
    response = Response(body, status_code=error.status)
    response.raw_headers = headers
    return response


async def send_error(send: Send, error: GatewayError) -> None:
    """Answer ``error`` on a raw ASGI ``send``: the fast routes and the body limit."""
    headers, body = rendered(error)
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GatewayApp(FastAPI):
    """FastAPI behind the door every request passes, with ``fast_routes`` answered ahead of
    FastAPI's middleware stack."""

    fast_routes: dict[str, FastRoute]
    _entry: ASGIApp | None = None

    def serve_fast(self, routes: list[FastRoute]) -> None:
        self.fast_routes = {route.path: route for route in routes}

    def guard(
        self,
        *,
        body_max_bytes: int,
        chunk_seconds: float | None = None,
        total_seconds: float | None = None,
    ) -> None:
        """The layers every route passes, this fast path included (module docstring)."""
        entry: ASGIApp = RequestIdMiddleware(BodyLimit(self._route, body_max_bytes))
        if chunk_seconds is not None and total_seconds is not None:
            entry = BodyReadTimeout(entry, chunk_seconds=chunk_seconds, total_seconds=total_seconds)
        self._entry = entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (self._entry or self._route)(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = getattr(self, "fast_routes", {}).get(scope["path"])
            if route is not None:
                await self._serve(route, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _serve(self, route: FastRoute, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            runtime: Runtime = self.state.runtime
            principal = authorize(await authenticate(runtime.verifier, authorization), route.scope)
            content = await route.handler(await _read_body(receive), runtime, principal)
        except _Disconnected:
            return
        except Exception as exc:
            await send_error(send, error_of(exc))
            return
        payload = orjson.dumps(content)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class BodyLimit:
    """The body size limit of every route: a declared ``Content-Length`` over it is refused
    413 before any handler runs; a body that grows past it raises ``PayloadTooLarge`` from
    ``receive``, and whatever the route answered instead (FastAPI answers 400 when it catches
    the error while parsing a body model) gives way to the 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"body over {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await send_error(send, self.error())
                return
        seen, too_large, started = 0, False, False

        async def limited() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise self.error()
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except PayloadTooLarge:
            if started:
                raise
        if too_large and not started:
            await send_error(send, self.error())


def read_json_root(body: bytes, root: str) -> Any:
    """``body[root]`` of a JSON object body, or 400 naming what is wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from exc
    if not isinstance(data, dict) or data.get(root) is None:
        raise BadRequest(f"param is missing or the value is empty: {root}", code="bad_request")
    return data[root]
