"""Event lookup when Lago lacks the event or is down, and checkout_url when Lago collects."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import text

from gateway.usage.models import DEAD
from tests.billing.support import BASIC, audit_rows, ok, seed_catalog
from tests.conftest import Gateway
from tests.integrations.fake_stripe import FakeStripe


async def _pending_event(gateway: Gateway, tx: str) -> None:
    await seed_catalog(gateway)
    writer = await gateway.headers("billing:write")
    sub = {"external_customer_id": "acme", "plan_code": BASIC, "external_id": "sub_acme"}
    ok(
        await gateway.client.post(
            "/api/v1/subscriptions", json={"subscription": sub}, headers=writer
        )
    )
    event = {
        "transaction_id": tx,
        "external_subscription_id": "sub_acme",
        "code": "photo_generation",
        "timestamp": "2025-09-01T10:00:00.5Z",
    }
    events = await gateway.headers("events:write")
    ok(await gateway.client.post("/api/v1/events", json={"event": event}, headers=events))


async def test_a_pending_event_is_answered_while_lago_is_down(gateway: Gateway) -> None:
    await _pending_event(gateway, "tx-1")
    reader = await gateway.headers("billing:read")
    gateway.emulator.faults.outage(60)
    answer = ok(await gateway.client.get("/api/v1/events/tx-1", headers=reader))
    gateway.emulator.faults.clear()
    event = answer["event"]
    assert (event["transaction_id"], event["timestamp"]) == ("tx-1", "2025-09-01T10:00:00.500Z")
    assert (event["lago_customer_id"], event["lago_subscription_id"]) == (None, None)
    assert event["properties"] == {} and event["external_subscription_id"] == "sub_acme"


async def test_a_dead_event_is_lagos_404_and_an_unknown_one_503_while_lago_is_down(
    gateway: Gateway,
) -> None:
    await _pending_event(gateway, "tx-dead")
    async with gateway.runtime.database.engine.begin() as conn:
        await conn.execute(text("UPDATE usage_events SET status = :s"), {"s": DEAD})
    reader = await gateway.headers("billing:read")
    gone = await gateway.client.get("/api/v1/events/tx-dead", headers=reader)
    assert (gone.status_code, gone.json()["code"]) == (404, "event_not_found")
    gateway.emulator.faults.outage(60)
    down = await gateway.client.get("/api/v1/events/tx-other", headers=reader)
    gateway.emulator.faults.clear()
    assert down.status_code == 503


async def test_checkout_url_passes_through_when_lago_collects(lago_collects: Gateway) -> None:
    gateway = lago_collects
    writer = await gateway.headers("billing:write")
    body = {"customer": {"external_id": "acme", "currency": "USD"}}
    ok(await gateway.client.post("/api/v1/customers", json=body, headers=writer))
    answer = ok(await gateway.client.post("/api/v1/customers/acme/checkout_url", headers=writer))
    assert answer["customer"]["external_customer_id"] == "acme"
    assert answer["customer"]["payment_provider"] == "stripe"
    assert answer["customer"]["checkout_url"].startswith("https://")
    [row] = await audit_rows(gateway, "customers.checkout_url")
    assert (row.outcome, row.upstream, row.target) == ("success", "lago", "acme")


async def test_a_transaction_id_with_special_characters(gateway: Gateway) -> None:
    # events_controller_spec.rb, "when transaction_id contains special characters"
    tx = "tx #1?a=b&c%d"
    await _pending_event(gateway, tx)
    reader = await gateway.headers("billing:read")
    path = f"/api/v1/events/{quote(tx, safe='')}"
    assert ok(await gateway.client.get(path, headers=reader))["event"]["transaction_id"] == tx
    body = {
        "event": {
            "transaction_id": tx,
            "external_subscription_id": "sub_acme",
            "code": "photo_generation",
            "timestamp": 1756684800,
        }
    }
    await gateway.runtime.lago.call("POST", "/events", json=body)
    found = ok(await gateway.client.get(path, headers=reader))["event"]
    assert found["lago_subscription_id"] == gateway.emulator.subscription("sub_acme")["lago_id"]


async def test_past_usage_needs_the_subscription_as_lago_says(gateway: Gateway) -> None:
    reader = await gateway.headers("billing:read")
    calls = sum(gateway.emulator.requests_by_status.values())
    for query in ("", "?external_subscription_id="):
        path = f"/api/v1/customers/acme/past_usage{query}"
        refused = await gateway.client.get(path, headers=reader)
        assert refused.status_code == 422
        details = refused.json()["error_details"]
        assert details == {"external_subscription_id": ["value_is_mandatory"]}
    assert sum(gateway.emulator.requests_by_status.values()) == calls  # Lago not asked


async def test_payment_methods_are_lagos_when_lago_collects(
    lago_collects: Gateway, stripe: FakeStripe
) -> None:
    gateway = lago_collects
    writer = await gateway.headers("billing:write")
    body = {"customer": {"external_id": "acme", "currency": "USD"}}
    ok(await gateway.client.post("/api/v1/customers", json=body, headers=writer))
    reader = await gateway.headers("billing:read")
    listed = ok(await gateway.client.get("/api/v1/customers/acme/payment_methods", headers=reader))
    assert listed["payment_methods"] == [] and listed["meta"]["total_count"] == 0
    assert not [r for r in stripe.requests if "payment_methods" in r.url.path]
