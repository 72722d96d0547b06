"""ASGI middleware that checks every ``/api/v1`` exchange against Lago's OpenAPI spec."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .contract import ContractViolation, Spec, validate_request, validate_response
from .guard import route_path
from .proxy import PROXY_SERVER

# Injected faults (429, 5xx) are not Lago responses, and the spec does not describe them.
_UNCHECKED_STATUSES = frozenset({429, 500, 503, 504})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class ContractRecorder:
    """Validates each request it receives and each response it gives; collects violations."""

    def __init__(
        self, app: ASGIApp, spec: Spec, violations: list[str], allow_nulls: bool = False
    ) -> None:
        self.app = app
        self.spec = spec
        self.violations = violations
        self.allow_nulls = allow_nulls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not route_path(scope).startswith("/api/v1"):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        started: dict[str, object] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        self._check_request(scope, body)
        await self.app(scope, replay, capture)
        self._check_response(scope, started, b"".join(chunks))

    def _check_request(self, scope: Scope, body: bytes) -> None:
        method, path, query, headers = _parts(scope)
        try:
            validate_request(
                method, path, query, headers, body, allow_nulls=self.allow_nulls, spec=self.spec
            )
        except ContractViolation as exc:
            self.violations.append(str(exc))

    def _check_response(self, scope: Scope, started: dict[str, object], body: bytes) -> None:
        status = started.get("status")
        if not isinstance(status, int) or status in _UNCHECKED_STATUSES:
            return
        method, path, query, _ = _parts(scope)
        raw_headers = started.get("headers") or []
        assert isinstance(raw_headers, list)
        if PROXY_SERVER in raw_headers:
            return  # a proxy in front of Lago answered (a fault), not Lago
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw_headers}
        try:
            validate_response(method, path, status, headers, body, query=query, spec=self.spec)
        except ContractViolation as exc:
            self.violations.append(str(exc))


def _parts(scope: Scope) -> tuple[str, str, list[tuple[str, str]], dict[str, str]]:
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    return scope["method"], route_path(scope), query, headers
