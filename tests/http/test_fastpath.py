"""The ingest hot path answered ahead of FastAPI keeps every behaviour of the framework path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway.auth.service import Principal, Scope
from gateway.errors import ValidationFailed
from gateway.http.fastpath import FastCall, FastRoute, GatewayApp
from tests.conftest import Gateway
from tests.usage.test_ingest import _seed

EVENT = {
    "transaction_id": "fast-1",
    "external_subscription_id": "sub_1",
    "code": "photo_generation",
    "timestamp": 1756684800,
}


async def test_the_request_id_is_echoed_and_lands_on_the_audit_row(gateway: Gateway) -> None:
    await _seed(gateway)
    headers = await gateway.headers("admin")
    response = await gateway.client.post(
        "/api/v1/events", json={"event": EVENT}, headers={**headers, "X-Request-Id": "req-fast-1"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-fast-1"
    assert response.headers["content-type"] == "application/json"
    minted = await gateway.client.post(
        "/api/v1/events", json={"event": {**EVENT, "transaction_id": "fast-2"}}, headers=headers
    )
    assert len(minted.headers["x-request-id"]) == 32
    rows = (
        await gateway.client.get("/gateway/audit?action=usage.events.create", headers=headers)
    ).json()["entries"]
    by_target = {row["target"]: row["request_id"] for row in rows}
    assert by_target == {"fast-1": "req-fast-1", "fast-2": minted.headers["x-request-id"]}


async def test_other_methods_on_the_same_path_go_through_fastapi(gateway: Gateway) -> None:
    response = await gateway.client.put("/api/v1/events", json={"event": EVENT})
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@dataclass
class _Verifier:
    async def verify(self, key: str) -> Principal | None:
        scopes = {"writer": frozenset({Scope.EVENTS_WRITE.value}), "reader": frozenset({"x"})}
        return Principal(key, scopes[key]) if key in scopes else None


@dataclass
class _Parts:
    keys: _Verifier
    echo: str = "echo"


async def _echo(call: FastCall) -> Any:
    body, part, principal = await call.body(), call.part, call.principal
    if body == b"boom":
        raise RuntimeError("handler bug")
    if body == b"invalid":
        raise ValidationFailed(details={"code": ["missing"]}, headers={"Retry-After": "3"})
    assert part == "echo"  # the part the route names
    return {"who": principal.name, "size": len(body)}


async def _open(call: FastCall) -> Any:
    """A route without a key (a provider webhook's door), with a lower body limit of its own."""
    body = await call.body(4)
    with pytest.raises(RuntimeError):
        call.principal  # noqa: B018 (no key was asked for, so none is handed over)
    return {"size": len(body), "signature": dict(call.scope["headers"])[b"x-signature"].decode()}


@pytest.fixture
async def client() -> Any:
    app = GatewayApp()
    app.state.parts = _Parts(_Verifier())
    app.serve_fast(
        [
            FastRoute("/in", Scope.EVENTS_WRITE, _echo, "echo"),
            FastRoute("/open", None, _open, "echo"),
        ]
    )
    app.guard(body_max_bytes=10)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


@pytest.mark.parametrize(
    ("key", "body", "status", "content"),
    [
        ("writer", b"12345", 200, {"who": "writer", "size": 5}),
        (None, b"1", 401, {"status": 401, "error": "Unauthorized", "code": "unauthorized"}),
        ("nobody", b"1", 401, {"status": 401, "error": "Unauthorized", "code": "unauthorized"}),
        ("reader", b"1", 403, None),
        ("writer", b"x" * 11, 413, None),
        ("writer", b"invalid", 422, None),
        ("writer", b"boom", 500, None),
    ],
)
async def test_fast_route_answers(
    client: httpx.AsyncClient, key: str | None, body: bytes, status: int, content: Any
) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = await client.post("/in", content=body, headers=headers)
    assert response.status_code == status
    assert len(response.headers["x-request-id"]) == 32  # every answer, errors included
    if content is not None:
        assert response.json() == content
    else:
        assert response.json()["status"] == status
    if status == 422:
        assert response.headers["retry-after"] == "3"
        assert response.json()["error_details"] == {"code": ["missing"]}
    if status == 403:
        assert response.json()["code"] == "missing_scope"


async def test_a_streamed_body_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(4):
            yield b"abcd"

    response = await client.post(
        "/in", content=chunks(), headers={"Authorization": "Bearer writer"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_a_client_gone_before_its_body_gets_no_answer() -> None:
    app = GatewayApp()
    app.state.parts = _Parts(_Verifier())
    app.serve_fast([FastRoute("/in", Scope.EVENTS_WRITE, _echo, "echo")])
    app.guard(body_max_bytes=10)
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/in",
        "headers": [(b"authorization", b"Bearer writer")],
    }
    await app(scope, receive, send)
    assert sent == []


async def test_a_route_without_a_scope_takes_no_key_and_may_lower_the_body_limit(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post("/open", content=b"1234", headers={"X-Signature": "s"})
    assert answer.status_code == 200
    assert answer.json() == {"size": 4, "signature": "s"}
    # Under the door's limit (10), over the route's (4).
    too_big = await client.post("/open", content=b"12345", headers={"X-Signature": "s"})
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "payload_too_large"


async def test_the_webhook_doors_are_fast_routes(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_framework(*_: Any) -> None:
        raise AssertionError("reached FastAPI")

    monkeypatch.setattr(gateway.app, "framework", no_framework)
    for path, code in [
        ("/gateway/webhooks/lago", "missing_signature_algorithm"),
        ("/gateway/webhooks/stripe", "missing_signature"),
    ]:
        answer = await gateway.client.post(path, content=b"{}")
        assert answer.status_code in (400, 401), answer.text
        assert answer.json()["code"] == code
        assert len(answer.headers["x-request-id"]) == 32
