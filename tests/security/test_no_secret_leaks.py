"""No secret ever reaches the logs, an error body or the audit table.

The gateway is configured with distinctive secrets (Lago key, Stripe key, both webhook secrets,
session secret), runs its workers, and is driven through representative traffic: usage events
(valid, invalid, during a Lago failure), customers (with Stripe failing), webhooks with forged
and with genuine signatures, relay endpoints and their secret rotation, unknown keys. Logs are
rendered as in production (structlog JSON lines on stderr) and captured; then the logs, every
response body and every audit row are searched for each secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import structlog
from sqlalchemy import text

from gateway.logging import configure_logging
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from tests.conftest import Gateway, make_settings, start_gateway

RELAY_SECRET_ROUTES = ("/gateway/endpoints",)


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the moment of writing (pytest swaps it between phases)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture(params=["INFO", "DEBUG"])
def log_level(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> str:
    """GATEWAY_LOG_LEVEL: the default, and the most talkative one an operator might set."""
    level: str = request.param
    caplog.set_level(level)
    return level


@pytest.fixture
def production_logs(capsys: pytest.CaptureFixture[str], log_level: str) -> Iterator[None]:
    """Production logging (JSON on stderr), uncached so every module logs into this capture."""
    configure_logging(log_level, json=True)
    structlog.configure(
        cache_logger_on_first_use=False,
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),
    )
    try:
        yield
    finally:
        structlog.reset_defaults()


def _stripe_failing(request: httpx.Request) -> httpx.Response:
    body = {"error": {"type": "api_error", "message": "An unknown error occurred"}}
    return httpx.Response(500, json=body)


class Traffic:
    """Sends requests and keeps every answer for the search."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.bodies: list[tuple[str, str]] = []

    async def send(self, method: str, url: str, key: str | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        response = await self.gateway.client.request(method, url, headers=headers, **kwargs)
        self.bodies.append((f"{method} {url} -> {response.status_code}", response.text))
        for name, value in response.headers.items():
            self.bodies.append((f"{method} {url} header {name}", value))
        return response


def _lago_signed(body: bytes, key: str) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return {
        "X-Lago-Signature": base64.b64encode(digest).decode(),
        "X-Lago-Signature-Algorithm": "hmac",
        "X-Lago-Unique-Key": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }


def _stripe_signed(body: bytes, secret: str) -> dict[str, str]:
    stamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"}


async def _drive(
    traffic: Traffic,
    keys: dict[str, str],
    emulator: EmulatorState,
    lago_hmac: str,
    stripe_webhook_secret: str,
) -> list[str]:
    """Representative requests; returns the relay endpoint secrets the gateway issued."""
    admin, events, billing = keys["admin"], keys["events"], keys["billing"]
    send = traffic.send
    await send("GET", "/gateway/audit", keys["unknown"])
    await send("GET", "/gateway/audit")
    await send("POST", "/api/v1/events", billing, json={"event": {"transaction_id": "t0"}})
    event = {"transaction_id": "t1", "external_subscription_id": "sub_1", "code": "nope"}
    await send("POST", "/api/v1/events", events, json={"event": event})
    await send("POST", "/api/v1/events", events, json={"event": {**event, "timestamp": "x"}})
    await send("POST", "/api/v1/events/batch", events, json={"events": [event, {"code": 1}]})
    await send("POST", "/api/v1/events", events, content=b"{not json")
    customer = {"customer": {"external_id": "acme", "name": "Acme", "email": "a@example.com"}}
    await send("POST", "/api/v1/customers", billing, json=customer)
    await send("GET", "/api/v1/customers/acme", billing)
    await send("GET", "/api/v1/customers/nobody", billing)

    webhook = orjson.dumps(
        {
            "webhook_type": "customer.updated",
            "object_type": "customer",
            "customer": {"external_id": "acme"},
        }
    )
    forged = {**_lago_signed(webhook, "not-the-key"), "X-Lago-Signature": "Zm9yZ2Vk"}
    await send("POST", "/gateway/webhooks/lago", content=webhook, headers=forged)
    await send(
        "POST", "/gateway/webhooks/lago", content=webhook, headers=_lago_signed(webhook, lago_hmac)
    )
    stripe_event = orjson.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "type": "customer.updated",
            "created": int(time.time()),
            "data": {"object": {"id": "cus_1"}},
        }
    )
    await send(
        "POST",
        "/gateway/webhooks/stripe",
        content=stripe_event,
        headers={"Stripe-Signature": "t=1,v1=deadbeef"},
    )
    await send(
        "POST",
        "/gateway/webhooks/stripe",
        content=stripe_event,
        headers=_stripe_signed(stripe_event, stripe_webhook_secret),
    )

    relay_secrets = []
    created = await send(
        "POST",
        "/gateway/endpoints",
        admin,
        json={"url": "http://127.0.0.1:9/hook", "filter_types": ["*"]},
    )
    if created.status_code == 201:
        endpoint = created.json()["endpoint"]["id"]
        relay_secrets.append(created.json()["secret"])
        rotated = await send("POST", f"/gateway/endpoints/{endpoint}/secret/rotate", admin)
        relay_secrets.append(rotated.json()["secret"])

    emulator.faults.error_rate = 1.0
    await send("POST", "/api/v1/events", events, json={"event": {**event, "transaction_id": "t2"}})
    await send("GET", "/api/v1/customers/acme", billing)
    await send("POST", "/api/v1/customers", billing, json=customer)
    emulator.faults.clear()
    emulator.faults.outage(2.0)
    await send("GET", "/api/v1/customers/acme", billing)
    await asyncio.sleep(1.5)  # the workers retry against the failing Lago meanwhile
    emulator.faults.clear()
    await send("GET", "/gateway/audit", admin, params={"limit": 500})
    return relay_secrets


async def _audit_rows(gateway: Gateway) -> list[str]:
    async with gateway.runtime.database.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM audit_entries"))).all()
    return [repr(tuple(row)) for row in rows]


@pytest.mark.usefixtures("production_logs")
async def test_no_secret_appears_in_logs_error_bodies_or_audit(
    database_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    values = {
        "lago_api_key": f"lago-key-{secrets.token_hex(16)}",
        "stripe_secret_key": f"sk_test_{secrets.token_hex(16)}",
        "stripe_webhook_secret": f"whsec_{secrets.token_hex(16)}",
        "lago_webhook_hmac_key": str(uuid.uuid4()),
        "session_secret": f"session-{secrets.token_hex(16)}",
    }
    settings = make_settings(database_url, relay_allow_private=True, log_json=True, **values)
    emulator = EmulatorState()
    lago = create_emulator(emulator, api_key=values["lago_api_key"])
    gateway, manager = await start_gateway(
        settings,
        emulator,
        run_workers=True,
        lago_transport=httpx.ASGITransport(app=lago),
        stripe_transport=httpx.MockTransport(_stripe_failing),
    )
    traffic = Traffic(gateway)
    try:
        keys = {
            "admin": await gateway.key("admin"),
            "events": await gateway.key("events:write"),
            "billing": await gateway.key("billing:write", "billing:read"),
            "unknown": f"gw_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}",
        }
        relay_secrets = await _drive(
            traffic,
            keys,
            emulator,
            values["lago_webhook_hmac_key"],
            values["stripe_webhook_secret"],
        )
        audit = await _audit_rows(gateway)
    finally:
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)

    captured = capsys.readouterr()
    logs = captured.err + captured.out + caplog.text
    by_logger = [(record.name, record.getMessage()) for record in caplog.records]
    assert "webhooks.inbound.rejected" in logs, "the log capture saw nothing"
    assert len(audit) > 5

    named = {**values, **{f"gateway key {n}": k for n, k in keys.items()}}
    named |= {f"gateway key {n} (secret part)": k.split("_", 2)[2] for n, k in keys.items()}
    named |= {f"relay secret {i}": s for i, s in enumerate(relay_secrets)}
    leaks = []
    for name, secret in named.items():
        if secret in logs:
            sources = sorted({logger for logger, line in by_logger if secret in line})
            leaks.append(f"{name} in the logs (stdlib loggers: {sources or 'none'})")
        leaks += [f"{name} in audit row {row[:80]}" for row in audit if secret in row]
        for label, body in traffic.bodies:
            shown_by_design = name.startswith("relay secret") and label.startswith(
                tuple(f"POST {route}" for route in RELAY_SECRET_ROUTES)
            )
            if secret in body and not shown_by_design:
                leaks.append(f"{name} in the answer to {label}")
    assert leaks == []
