"""A gateway with webhook secrets configured, and the signers Lago and Stripe use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text

from gateway.webhooks.handlers import Handler, HandlerTable, Route
from gateway.worker import WEBHOOK_HANDLERS
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from tests.conftest import LAGO_KEY, LAGO_URL, Gateway, make_settings, start_gateway

HMAC_KEY = "3f1a5e8e-lago-org-hmac-key"
STRIPE_SECRET = "whsec_current_0123456789abcdef"
STRIPE_OLD_SECRET = "whsec_previous_0123456789abcdef"
LAGO_PATH = "/gateway/webhooks/lago"
STRIPE_PATH = "/gateway/webhooks/stripe"


def lago_hmac(body: bytes, key: str = HMAC_KEY) -> str:
    """``X-Lago-Signature`` as Lago computes it for ``signature_algo: hmac``."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def lago_jwt(body: bytes, key: rsa.RSAPrivateKey, issuer: str = LAGO_URL) -> str:
    """``X-Lago-Signature`` as Lago computes it for ``signature_algo: jwt``."""
    return jwt.encode({"data": body.decode(), "iss": issuer}, key, algorithm="RS256")


def stripe_header(body: bytes, secret: str = STRIPE_SECRET, at: int | None = None) -> str:
    """``Stripe-Signature`` as Stripe computes it: ``t=…,v1=hex(hmac(secret, "t.body"))``."""
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def lago_headers(
    body: bytes, unique_key: str, algorithm: str = "hmac", **extra: str
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Lago-Signature": lago_hmac(body),
        "X-Lago-Signature-Algorithm": algorithm,
        "X-Lago-Unique-Key": unique_key,
    }
    headers.update(extra)
    return headers


def stripe_event(event_id: str = "evt_1", event_type: str = "payment_intent.succeeded") -> bytes:
    """A Stripe event body (snapshot payload), pretty-printed as Stripe sends it."""
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2023-08-16",
        "created": 1717000000,
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "data": {
            "object": {"id": "pi_1", "object": "payment_intent", "amount": 1999, "currency": "usd"}
        },
    }
    return json.dumps(event, indent=2).encode()


def lago_body(webhook_type: str = "invoice.created", lago_id: str = "inv_1") -> bytes:
    """A Lago webhook envelope as Lago serialises it (``payload.to_json``: compact)."""
    invoice = {
        "lago_id": lago_id,
        "number": "ACME-001",
        "total_amount_cents": 1999,
        "currency": "USD",
        "payment_status": "pending",
    }
    envelope = {
        "webhook_type": webhook_type,
        "object_type": "invoice",
        "organization_id": "org_1",
        "invoice": invoice,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


class HandlerSet:
    """The handler table a test's processor runs: the gateway's own, then the test's routes."""

    def __init__(self) -> None:
        self.added: list[Route] = []

    def add(self, source: str, type_pattern: str, handler: Handler) -> None:
        self.added.append(Route(source, type_pattern, handler))

    @property
    def table(self) -> HandlerTable:
        return HandlerTable([*WEBHOOK_HANDLERS.routes, *self.added])


@pytest.fixture
def registered() -> HandlerSet:
    """Handlers a test adds to the gateway's table (given to its processors explicitly)."""
    return HandlerSet()


class CountingTransport(httpx.AsyncBaseTransport):
    """The emulator under the gateway's Lago client, counting requests by path."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.paths: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        return await self.inner.handle_async_request(request)


class Hooks:
    """The gateway under test and what the tests read back from its database."""

    def __init__(self, gateway: Gateway, transport: CountingTransport) -> None:
        self.gateway = gateway
        self.client = gateway.client
        self.emulator = gateway.emulator
        self.transport = transport

    @property
    def key_fetches(self) -> int:
        return self.transport.paths["/api/v1/webhooks/json_public_key"]

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.gateway.runtime.database.engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())

    async def inbound(self) -> list[Any]:
        return await self.rows(
            "SELECT id, source, provider_event_id, event_type, status, attempts, last_error, "
            "body FROM inbound_webhooks ORDER BY id"
        )

    async def relay_messages(self) -> list[Any]:
        return await self.rows("SELECT id, type, source, body FROM relay_messages ORDER BY seq")

    async def audit(self, action: str) -> list[Any]:
        return await self.rows(
            "SELECT actor, outcome, status, detail, target FROM audit_entries "
            "WHERE action = :a ORDER BY id",
            a=action,
        )


@pytest.fixture
async def hooks(database_url: str, emulator: EmulatorState) -> AsyncIterator[Hooks]:
    """The gateway with Lago's HMAC key and two Stripe secrets (rotation), workers off."""
    emulator.api_url = LAGO_URL
    emulator.hmac_key = HMAC_KEY
    settings = make_settings(
        database_url,
        lago_webhook_hmac_key=HMAC_KEY,
        stripe_webhook_secret=f"{STRIPE_SECRET}, {STRIPE_OLD_SECRET}",
    )
    transport = CountingTransport(create_emulator(emulator, api_key=LAGO_KEY, validate=True))
    gateway, manager = await start_gateway(settings, emulator, lago_transport=transport)
    try:
        yield Hooks(gateway, transport)
    finally:
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == [], "Lago contract violations"
