"""Every route, with every scope, answers as docs/auth-and-audit.md's scope table says.

A route's required scope is read from its dependencies (the ``require(scope)`` dependency of
``gateway/http/auth.py``), never from a hand-kept table, so a new route is checked the
day it lands. No key or an unknown key: 401. A key without the route's scope: 403
``missing_scope``. The route's scope, or ``admin``: past authentication (neither 401 nor 403).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from gateway.auth.service import Scope
from tests.conftest import Gateway

PUBLIC_OPERATIONS = {"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"}
FRAMEWORK_PAGES = {"/docs/oauth2-redirect", "/redoc"}
# Inbound webhook receivers: the provider's signature is the credential, not a gateway key.
SIGNATURE_AUTHENTICATED = {("POST", "/gateway/webhooks/lago"), ("POST", "/gateway/webhooks/stripe")}
GUARDED_PREFIXES = ("/api/v1/", "/gateway/")
# Lago ids are UUIDs; one that exists nowhere fits every path parameter of the surface.
PATH_VALUE = "00000000-0000-4000-8000-000000000000"
UNKNOWN_KEY = "gw_0123456789ab_this-key-was-never-issued-by-the-gateway"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    scopes: frozenset[Scope]

    @property
    def url(self) -> str:
        return re.sub(r"\{[^}]+\}", PATH_VALUE, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _require_scope(call: Any) -> Scope | None:
    if getattr(call, "__module__", "") != "gateway.http.auth":
        return None
    if getattr(call, "__qualname__", "") != "require.<locals>.dependency":
        return None
    scope = inspect.getclosurevars(call).nonlocals.get("scope")
    return scope if isinstance(scope, Scope) else None


def required_scopes(dependant: Dependant) -> frozenset[Scope]:
    """Scopes demanded anywhere in a route's dependency tree."""
    found: set[Scope] = set()
    for dependency in dependant.dependencies:
        scope = _require_scope(dependency.call)
        if scope is not None:
            found.add(scope)
        found |= required_scopes(dependency)
    return frozenset(found)


def operations(app: FastAPI) -> list[Operation]:
    """Every method and path the app serves, with the scopes each one requires.

    A plain Starlette route (the ingest fast path, served ahead of FastAPI's router) has no
    dependencies to read: it takes the scopes of the documented FastAPI route of the same method
    and path, and the matrix then checks that it behaves accordingly.
    """
    scopes: dict[tuple[str, str], frozenset[Scope]] = {}
    for context in iter_route_contexts(app.routes):
        dependant = getattr(context, "dependant", None)
        found = required_scopes(dependant) if dependant is not None else frozenset()
        for method in sorted((context.methods or set()) - {"HEAD", "OPTIONS"}):
            key = (method, context.path)
            scopes[key] = scopes.get(key, frozenset()) | found
    return [Operation(method, path, found) for (method, path), found in scopes.items()]


def guarded(app: FastAPI) -> list[Operation]:
    return [
        op
        for op in operations(app)
        if op.path.startswith(GUARDED_PREFIXES)
        and (op.method, op.path) not in SIGNATURE_AUTHENTICATED
    ]


async def _call(gateway: Gateway, op: Operation, key: str | None) -> tuple[int, Any]:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    json = {} if op.method in ("POST", "PUT", "PATCH") else None
    response = await gateway.client.request(op.method, op.url, headers=headers, json=json)
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body


def test_every_route_is_known_to_the_matrix(gateway: Gateway) -> None:
    unexpected = [
        str(op)
        for op in operations(gateway.app)
        if not op.path.startswith(GUARDED_PREFIXES)
        and op.path not in PUBLIC_OPERATIONS | FRAMEWORK_PAGES
        and not op.path.startswith("/finance")
    ]
    assert unexpected == [], "routes outside /api/v1, /gateway and the public operations"


def test_every_api_and_gateway_route_requires_a_scope(gateway: Gateway) -> None:
    unguarded = [str(op) for op in guarded(gateway.app) if not op.scopes]
    assert guarded(gateway.app), "no route under /api/v1 or /gateway found"
    assert unguarded == []


def test_public_operations_and_receivers_need_no_key(gateway: Gateway) -> None:
    for op in operations(gateway.app):
        if op.path in PUBLIC_OPERATIONS or (op.method, op.path) in SIGNATURE_AUTHENTICATED:
            assert op.scopes == frozenset(), str(op)


async def test_webhook_receivers_refuse_unsigned_requests(gateway: Gateway) -> None:
    present = {(op.method, op.path) for op in operations(gateway.app)}
    for method, path in SIGNATURE_AUTHENTICATED & present:
        response = await gateway.client.request(method, path, content=b'{"type":"x"}')
        assert response.status_code in (400, 401), f"{method} {path}"


async def test_every_route_answers_each_scope_as_documented(
    gateway: Gateway, subtests: pytest.Subtests
) -> None:
    keys = {scope: await gateway.key(scope.value) for scope in Scope}
    for op in guarded(gateway.app):
        with subtests.test(operation=str(op)):
            for key in (None, UNKNOWN_KEY):
                status, body = await _call(gateway, op, key)
                assert status == 401, f"{op} with key {key!r}: {status}"
                assert body["status"] == 401 and body["code"], body
            for scope, key in keys.items():
                status, body = await _call(gateway, op, key)
                allowed = scope in op.scopes or scope is Scope.ADMIN
                if allowed:
                    assert status not in (401, 403), f"{op} with {scope}: {status} {body}"
                else:
                    assert status == 403, f"{op} with {scope}: {status} {body}"
                    assert body["code"] == "missing_scope", body
                    assert set(body) >= {"status", "error", "code"}


async def test_a_revoked_key_is_refused_everywhere(gateway: Gateway) -> None:
    from gateway.auth.service import revoke_key

    key = await gateway.key(Scope.ADMIN.value, name="to-revoke")
    async with gateway.runtime.database.session() as session:
        await revoke_key(session, "to-revoke")
        await session.commit()
    for op in guarded(gateway.app):
        status, _ = await _call(gateway, op, key)
        assert status == 401, str(op)
