"""The gateway's door: what every request passes before its route, and the hot paths (usage
ingest, the provider webhooks) it serves itself.

Every HTTP request passes, outermost first: the body read timeout (``body_timeout``: 408 and
close when a body stalls), then the ``Door``: the request id (kept from ``X-Request-Id`` or
minted, echoed back, on logs and audit rows) and the body limit (413 for a body over
``GATEWAY_BODY_MAX_BYTES``, declared or streamed). Then the paths of ``fast_routes`` are
answered straight from the ASGI scope, and everything else goes to FastAPI.

A single-event ``POST /api/v1/events`` costs the gateway about as much CPU in framework
layers (middlewares, route matching across every router, dependency resolution) as in
validating and storing the event, hence the fast routes: the key and scope are checked by
the functions behind the FastAPI dependencies (``auth.service``), and an error is answered
as FastAPI's handlers answer it (``error_of``, ``errors.rendered``). A fast route is
served by the door itself, without the ``receive`` and ``send`` wrappers a FastAPI route
gets: about a third of the door's cost per request. These paths with another method go
through FastAPI as usual; the FastAPI routes of the same paths stay in the app for the
OpenAPI schema. A fast route without a key scope (the webhook doors, whose signature is the
credential) is handed the request's scope and checks the caller itself.

A fast route's path may hold one ``{name}`` segment (``/gateway/holds/{hold_id}/capture``):
it matches one non-empty path segment, handed to the handler as ``call.params[name]``, as
FastAPI's ``str`` path parameter matches it. ``GET`` routes read ``call.query``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth.service import Principal, authenticate, authorize
from gateway.auth.service import Scope as KeyScope
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, rendered
from gateway.http.body_timeout import BodyReadTimeout
from gateway.http.dependencies import part_of
from gateway.logging import get_logger, request_id_from, request_id_var

log = get_logger(__name__)

Header = tuple[bytes, bytes]


class FastCall:
    """One request to a fast route, as its handler sees it."""

    __slots__ = ("_door", "_principal", "_receive", "app", "params", "part", "scope", "status")

    def __init__(
        self,
        door: Door,
        scope: Scope,
        receive: Receive,
        part: Any,
        principal: Principal | None,
        params: dict[str, str] | None = None,
    ) -> None:
        self._door = door
        self._receive = receive
        self._principal = principal
        self.app: GatewayApp = door.app
        self.scope = scope
        self.part = part  # the capability state ``Parts.<route.part>``
        self.params = params or {}  # the path's ``{name}`` segment
        self.status = 200  # the handler may answer another success status (201)

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters (the last value of a repeated name)."""
        raw = self.scope.get("query_string", b"")
        return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else {}

    @property
    def principal(self) -> Principal:
        """The caller's key (routes with a ``scope``; the door has checked it)."""
        if self._principal is None:
            raise RuntimeError("this fast route takes no API key")
        return self._principal

    async def body(self, limit: int | None = None) -> bytes:
        """The body, counted as it arrives against ``limit`` (at most the door's own):
        over it, ``PayloadTooLarge``."""
        return await self._door.read(self._receive, limit)


Handler = Callable[[FastCall], Awaitable[Any]]


@dataclass(frozen=True)
class FastRoute:
    """``method path``: ``handler(call)`` returns the JSON content of a 200 (or of
    ``call.status``), or raises a ``GatewayError``. With a ``scope``, the door first admits
    only a key holding it; without one (``None``: the provider webhooks, whose signature is
    the credential) the handler checks the caller itself. ``part`` names the capability state
    it is handed."""

    path: str
    scope: KeyScope | None
    handler: Handler
    part: str
    method: str = "POST"

    def template(self) -> tuple[str, str, str] | None:
        """(prefix, name, suffix) of a path with a ``{name}`` segment, else None."""
        head, brace, rest = self.path.partition("{")
        if not brace:
            return None
        name, closed, tail = rest.partition("}")
        whole = head.endswith("/") and (not tail or tail.startswith("/"))
        if not closed or not name or "/" in name or "{" in tail or not whole:
            raise ValueError(f"a fast route takes one whole {{name}} segment: {self.path}")
        return head, name, tail


class FastRoutes:
    """The fast routes by method and path: exact paths first, then templates."""

    def __init__(self, routes: list[FastRoute]) -> None:
        self.exact: dict[tuple[str, str], FastRoute] = {}
        self.templates: list[tuple[str, str, str, str, FastRoute]] = []
        for route in routes:
            found = route.template()
            if found is None:
                self.exact[(route.method, route.path)] = route
            else:
                self.templates.append((route.method, *found, route))
        self.methods = {route.method for route in routes}

    def match(self, method: str, path: str) -> tuple[FastRoute, dict[str, str] | None] | None:
        if method not in self.methods:
            return None
        route = self.exact.get((method, path))
        if route is not None:
            return route, None
        for wanted, prefix, name, suffix, route in self.templates:
            if wanted != method or not path.startswith(prefix) or not path.endswith(suffix):
                continue
            value = path[len(prefix) : len(path) - len(suffix)]
            if value and "/" not in value:
                return route, {name: value}
        return None


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


async def send_error(send: Send, error: GatewayError, *extra: Header) -> None:
    """Answer ``error`` on a raw ASGI ``send``: the fast routes and the door."""
    headers, body = rendered(error, *extra)
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GatewayApp(FastAPI):
    """FastAPI behind the door every request passes, with ``fast_routes`` answered by the
    door, ahead of FastAPI's middleware stack."""

    fast_routes: FastRoutes = FastRoutes([])
    _entry: ASGIApp | None = None

    def serve_fast(self, routes: list[FastRoute]) -> None:
        self.fast_routes = FastRoutes(routes)

    def guard(
        self,
        *,
        body_max_bytes: int,
        chunk_seconds: float | None = None,
        total_seconds: float | None = None,
    ) -> None:
        """The layers every route passes, the fast routes included (module docstring)."""
        entry: ASGIApp = Door(self, body_max_bytes)
        if chunk_seconds is not None and total_seconds is not None:
            entry = BodyReadTimeout(entry, chunk_seconds=chunk_seconds, total_seconds=total_seconds)
        self._entry = entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._entry is None:
            await super().__call__(scope, receive, send)
        else:
            await self._entry(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own stack (middlewares, router), behind the door."""
        await super().__call__(scope, receive, send)


class Door:
    """Request id and body limit for every request, and the fast routes served.

    The body limit: a declared ``Content-Length`` over it is refused 413 before any handler
    runs; a body that grows past it raises ``PayloadTooLarge`` from ``receive``, and for a
    FastAPI route whatever it answered instead (FastAPI answers 400 when it catches the error
    while parsing a body model) gives way to the 413."""

    def __init__(self, app: GatewayApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"body over {self.max_bytes} bytes")

    async def read(self, receive: Receive, limit: int | None = None) -> bytes:
        """A fast route's body: counted against the limit (the door's, or a route's lower
        one) as it arrives."""
        chunks: list[bytes] = []
        size = 0
        limit = self.max_bytes if limit is None else min(limit, self.max_bytes)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body over {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app.framework(scope, receive, send)
            return
        authorization, given_id, length = "", b"", -1
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-request-id":
                given_id = value
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        request_id = request_id_from(given_id)
        token = request_id_var.set(request_id)
        try:
            id_header = (b"x-request-id", request_id.encode("latin-1"))
            found = self.app.fast_routes.match(scope["method"], scope["path"])
            if length > self.max_bytes:
                await send_error(send, self.too_large(), id_header)
            elif found is not None:
                route, params = found
                await self._fast(route, params, scope, receive, send, authorization, id_header)
            else:
                await self._framework(scope, receive, send, id_header)
        finally:
            request_id_var.reset(token)

    async def _fast(
        self,
        route: FastRoute,
        params: dict[str, str] | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        authorization: str,
        id_header: Header,
    ) -> None:
        try:
            principal = None
            if route.scope is not None:
                keys = part_of(self.app, "keys")
                principal = authorize(await authenticate(keys, authorization), route.scope)
            part = part_of(self.app, route.part)
            call = FastCall(self, scope, receive, part, principal, params)
            content = await route.handler(call)
        except _Disconnected:
            return
        except Exception as exc:
            await send_error(send, error_of(exc), id_header)
            return
        payload = orjson.dumps(content)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
            id_header,
        ]
        await send({"type": "http.response.start", "status": call.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _framework(
        self, scope: Scope, receive: Receive, send: Send, id_header: Header
    ) -> None:
        seen, too_large, started = 0, False, False

        async def limited() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise self.too_large()
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app.framework(scope, limited, guarded)
        except PayloadTooLarge:
            if started:
                raise
        if too_large and not started:
            await send_error(send, self.too_large(), id_header)


def read_json_root(body: bytes, root: str) -> Any:
    """``body[root]`` of a JSON object body, or 400 naming what is wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from exc
    if not isinstance(data, dict) or data.get(root) is None:
        raise BadRequest(f"param is missing or the value is empty: {root}", code="bad_request")
    return data[root]
