"""Raw ASGI serving for the ingest hot path, ahead of FastAPI's middleware and router.

A single-event ``POST /api/v1/events`` costs the gateway about as much CPU in framework
layers (six middlewares, route matching across every router, dependency resolution) as in
validating and storing the event. The paths listed here are answered straight from the
ASGI scope, with the same behaviour as everywhere else: the request id (kept from
``X-Request-Id`` or minted, echoed back, on the audit row), the body limit (413), the
bearer key and scope (401/403), and errors in Lago's shape. Every other request, and
these paths with another method, go through FastAPI as usual; the FastAPI routes of the
same paths stay in the app for the OpenAPI schema. Outside both sits the request body
read timeout (``gateway/body_timeout.py``), so it covers every route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth.service import Principal, authenticate, authorize
from gateway.auth.service import Scope as KeyScope
from gateway.body_timeout import BodyReadTimeout
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge
from gateway.logging import get_logger, request_id_from, request_id_var
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


class GatewayApp(FastAPI):
    """FastAPI, with ``fast_routes`` answered before the middleware stack is entered."""

    fast_routes: dict[str, FastRoute]
    body_max_bytes: int
    _entry: ASGIApp | None = None

    def serve_fast(self, routes: list[FastRoute], body_max_bytes: int) -> None:
        self.fast_routes = {route.path: route for route in routes}
        self.body_max_bytes = body_max_bytes

    def time_bodies(self, chunk_seconds: float, total_seconds: float) -> None:
        """Every route, this fast path included: 408 and close when a body stalls."""
        self._entry = BodyReadTimeout(
            self._route, chunk_seconds=chunk_seconds, total_seconds=total_seconds
        )

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
        authorization, given_id = "", b""
        length = -1
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-request-id":
                given_id = value
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        request_id = request_id_from(given_id)
        token = request_id_var.set(request_id)
        headers: dict[str, str] = {}
        try:
            if length > self.body_max_bytes:
                raise PayloadTooLarge(f"body over {self.body_max_bytes} bytes")
            runtime: Runtime = self.state.runtime
            principal = authorize(await authenticate(runtime.verifier, authorization), route.scope)
            body = await _read_body(receive, self.body_max_bytes)
            status, content = 200, await route.handler(body, runtime, principal)
        except _Disconnected:
            return
        except GatewayError as exc:
            status, content, headers = exc.status, exc.body(), exc.headers
        except Exception as exc:
            log.exception("app.unhandled_error", error=type(exc).__name__)
            status, content = 500, GatewayError().body()
        finally:
            request_id_var.reset(token)
        payload = orjson.dumps(content)
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", request_id.encode("latin-1")),
        ]
        raw_headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body over {max_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_json_root(body: bytes, root: str) -> Any:
    """``body[root]`` of a JSON object body, or 400 naming what is wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from exc
    if not isinstance(data, dict) or data.get(root) is None:
        raise BadRequest(f"param is missing or the value is empty: {root}", code="bad_request")
    return data[root]
