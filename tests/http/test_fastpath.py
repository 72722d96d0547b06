"""The ingest hot path answered ahead of FastAPI keeps every behaviour of the framework path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway.auth.service import Principal, Scope
from gateway.errors import ValidationFailed
from gateway.http.fastpath import FastCall, FastRoute, FastRoutes, GatewayApp
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


# Fast routes with a method and one ``{name}`` path segment ----------------------------


async def _thing(call: FastCall) -> Any:
    call.status = 201
    return {"route": "template", "params": call.params, "query": call.query}


async def _special(call: FastCall) -> Any:
    return {"route": "exact", "params": call.params, "query": call.query}


async def _posted(call: FastCall) -> Any:
    return {"route": "fast post", "params": call.params}


@pytest.fixture
async def templated() -> Any:
    """A GET template route, an exact GET route it would also match (registered after it),
    a POST route on another template, and FastAPI routes behind them that say they answered."""
    app = GatewayApp()
    app.state.parts = _Parts(_Verifier())

    @app.get("/things/{thing_id}/view")
    async def framework_view(thing_id: str) -> Any:
        return {"route": "fastapi", "thing_id": thing_id}

    @app.post("/things/{thing_id}/view")
    async def framework_post(thing_id: str) -> Any:
        return {"route": "fastapi post", "thing_id": thing_id}

    @app.get("/{rest:path}")
    async def framework_rest(rest: str) -> Any:
        return {"route": "fastapi rest", "rest": rest}

    app.serve_fast(
        [
            FastRoute("/things/{thing_id}/view", None, _thing, "echo", method="GET"),
            FastRoute("/things/special/view", None, _special, "echo", method="GET"),
            FastRoute("/posts/{post_id}", Scope.EVENTS_WRITE, _posted, "echo"),
        ]
    )
    app.guard(body_max_bytes=10)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


async def test_a_get_template_route_hands_the_segment_the_query_and_answers_its_status(
    templated: httpx.AsyncClient,
) -> None:
    response = await templated.get("/things/abc-1/view?a=1&b=two+words&a=3&flag&e=%C3%A9")
    assert response.status_code == 201
    assert response.json() == {
        "route": "template",
        "params": {"thing_id": "abc-1"},
        # The last value of a repeated name, blank values kept, percent escapes decoded.
        "query": {"a": "3", "b": "two words", "flag": "", "e": "é"},
    }
    assert len(response.headers["x-request-id"]) == 32
    bare = await templated.get("/things/x/view")
    assert (bare.status_code, bare.json()["query"]) == (201, {})
    assert bare.json()["params"] == {"thing_id": "x"}


async def test_the_template_matches_the_request_path_percent_decoded(
    templated: httpx.AsyncClient,
) -> None:
    response = await templated.get("/things/a%20b/view")
    assert response.status_code == 201
    assert response.json()["params"] == {"thing_id": "a b"}


@pytest.mark.parametrize(
    ("path", "rest"),
    [
        ("/things/a/b/view", "things/a/b/view"),  # the segment would hold a '/'
        ("/things//view", "things//view"),  # an empty segment
        ("/things/a%2Fb/view", "things/a/b/view"),  # the path is decoded before matching
        ("/things/abc/view/more", "things/abc/view/more"),
        ("/things/abc/viewer", "things/abc/viewer"),
        ("/xthings/abc/view", "xthings/abc/view"),
    ],
)
async def test_a_path_the_template_does_not_match_goes_to_fastapi(
    templated: httpx.AsyncClient, path: str, rest: str
) -> None:
    response = await templated.get(path)
    assert response.status_code == 200
    assert response.json() == {"route": "fastapi rest", "rest": rest}


async def test_another_method_on_a_template_path_goes_to_fastapi(
    templated: httpx.AsyncClient,
) -> None:
    posted = await templated.post("/things/abc/view")
    assert posted.status_code == 200
    assert posted.json() == {"route": "fastapi post", "thing_id": "abc"}
    # No FastAPI route answers GET on the POST template's path but the catch-all.
    got = await templated.get("/posts/p1")
    assert got.json() == {"route": "fastapi rest", "rest": "posts/p1"}
    # A POST template route is served by the door, its key checked first.
    refused = await templated.post("/posts/p1")
    assert refused.status_code == 401
    answered = await templated.post("/posts/p1", headers={"Authorization": "Bearer writer"})
    assert answered.status_code == 200
    assert answered.json() == {"route": "fast post", "params": {"post_id": "p1"}}


async def test_an_exact_path_takes_precedence_over_a_template(
    templated: httpx.AsyncClient,
) -> None:
    response = await templated.get("/things/special/view?q=1")
    assert response.status_code == 200  # the exact route's handler leaves the status alone
    assert response.json() == {"route": "exact", "params": {}, "query": {"q": "1"}}
    near = await templated.get("/things/specials/view")
    assert near.json()["route"] == "template"


def test_fast_routes_match_by_method_exact_paths_first() -> None:
    template = FastRoute("/a/{x}/b", None, _thing, "echo", method="GET")
    exact = FastRoute("/a/y/b", None, _special, "echo", method="GET")
    posted = FastRoute("/a/y/b", None, _posted, "echo")
    routes = FastRoutes([template, exact, posted])
    assert routes.match("GET", "/a/y/b") == (exact, None)
    assert routes.match("POST", "/a/y/b") == (posted, None)
    assert routes.match("GET", "/a/z/b") == (template, {"x": "z"})
    assert routes.match("POST", "/a/z/b") is None
    assert routes.match("PUT", "/a/y/b") is None
    assert routes.match("GET", "/a//b") is None
    assert routes.match("GET", "/a/b") is None
    assert routes.match("GET", "/a/z/z/b") is None
    last = FastRoutes([FastRoute("/a/{x}", None, _thing, "echo", method="GET")])
    assert last.match("GET", "/a/z") == (last.templates[0][-1], {"x": "z"})
    assert last.match("GET", "/a/") is None
    assert last.match("GET", "/a/z/") is None


@pytest.mark.parametrize(
    "path",
    [
        "/a/{x}/{y}",  # two names
        "/a/{x}/b/{y}",
        "/a/x{y}",  # not a whole segment
        "/a/{x}y",
        "/a/{x}y/b",
        "a{x}",
    ],
)
def test_a_template_of_more_than_one_whole_segment_is_refused(path: str) -> None:
    route = FastRoute(path, None, _thing, "echo", method="GET")
    with pytest.raises(ValueError, match="one whole"):
        route.template()
    with pytest.raises(ValueError, match="one whole"):
        FastRoutes([route])
    app = GatewayApp()
    with pytest.raises(ValueError, match="one whole"):
        app.serve_fast([route])


@pytest.mark.parametrize("path", ["/a/{x", "/a/{x/b", "/a/{}", "/a/{}/b"])
def test_a_template_with_an_unclosed_or_empty_name_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="one whole"):
        FastRoute(path, None, _thing, "echo", method="GET").template()
