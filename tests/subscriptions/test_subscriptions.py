"""Subscriptions through the gateway, with Lago's plan-change and termination rules."""

from __future__ import annotations

from gateway.usage.lookups import Known
from tests.billing.support import BASIC, PREMIUM, audit_rows, ok, outcomes, seed_catalog
from tests.conftest import Gateway


def _sub(plan: str, **extra: str) -> dict[str, dict[str, str]]:
    return {
        "subscription": {
            "external_customer_id": "acme",
            "plan_code": plan,
            "external_id": "sub_acme",
            **extra,
        }
    }


async def test_create_subscribes_audits_and_usage_validation_knows_it_at_once(
    gateway: Gateway,
) -> None:
    await seed_catalog(gateway)
    writer = await gateway.headers("billing:write")
    body = ok(await gateway.client.post("/api/v1/subscriptions", json=_sub(BASIC), headers=writer))
    assert body["subscription"]["status"] == "active"
    assert gateway.emulator.subscription("sub_acme")["plan_code"] == BASIC
    calls = sum(gateway.emulator.requests_by_status.values())
    assert await gateway.parts.lookups.subscription("sub_acme") is Known.YES
    assert sum(gateway.emulator.requests_by_status.values()) == calls  # answered from memory
    [row] = await audit_rows(gateway)
    assert (row.action, row.outcome, row.target, row.detail) == (
        "subscriptions.create",
        "success",
        "sub_acme",
        {"plan_code": BASIC},
    )


async def test_an_upgrade_applies_at_once_and_a_downgrade_at_period_end(gateway: Gateway) -> None:
    await seed_catalog(gateway)
    writer = await gateway.headers("billing:write")
    ok(await gateway.client.post("/api/v1/subscriptions", json=_sub(BASIC), headers=writer))
    up = ok(await gateway.client.post("/api/v1/subscriptions", json=_sub(PREMIUM), headers=writer))
    assert (up["subscription"]["plan_code"], up["subscription"]["previous_plan_code"]) == (
        PREMIUM,
        BASIC,
    )
    assert gateway.emulator.subscription("sub_acme")["plan_code"] == PREMIUM
    assert gateway.emulator.subscription("sub_acme", "terminated")["plan_code"] == BASIC

    down = ok(await gateway.client.post("/api/v1/subscriptions", json=_sub(BASIC), headers=writer))
    assert down["subscription"]["plan_code"] == PREMIUM
    assert down["subscription"]["next_plan_code"] == BASIC
    assert down["subscription"]["downgrade_plan_date"]
    assert gateway.emulator.subscription("sub_acme", "pending")["plan_code"] == BASIC
    reader = await gateway.headers("billing:read")
    pending = ok(
        await gateway.client.get("/api/v1/subscriptions/sub_acme?status=pending", headers=reader)
    )
    assert pending["subscription"]["plan_code"] == BASIC
    listed = ok(
        await gateway.client.get("/api/v1/subscriptions?external_customer_id=acme", headers=reader)
    )
    assert [s["plan_code"] for s in listed["subscriptions"]] == [PREMIUM]
    assert listed["meta"]["total_count"] == 1


async def test_terminate_with_lagos_options_and_cancel_a_pending_downgrade(
    gateway: Gateway,
) -> None:
    await seed_catalog(gateway)
    writer = await gateway.headers("billing:write")
    ok(await gateway.client.post("/api/v1/subscriptions", json=_sub(PREMIUM), headers=writer))
    ok(await gateway.client.post("/api/v1/subscriptions", json=_sub(BASIC), headers=writer))
    canceled = ok(
        await gateway.client.delete("/api/v1/subscriptions/sub_acme?status=pending", headers=writer)
    )
    assert canceled["subscription"]["status"] == "canceled"
    assert gateway.emulator.subscription("sub_acme")["plan_code"] == PREMIUM
    wrong = await gateway.client.delete(
        "/api/v1/subscriptions/sub_acme?on_termination_invoice=later", headers=writer
    )
    assert wrong.status_code == 422
    assert wrong.json()["error_details"] == {"on_termination_invoice": ["value_is_invalid"]}
    ended = ok(
        await gateway.client.delete(
            "/api/v1/subscriptions/sub_acme?on_termination_invoice=skip", headers=writer
        )
    )
    assert ended["subscription"]["status"] == "terminated"
    terminated = gateway.emulator.subscription("sub_acme", "terminated")
    assert terminated["on_termination_invoice"] == "skip"
    rows = outcomes(await audit_rows(gateway))
    assert [o for o in rows if o[0] == "subscriptions.terminate"] == [
        ("subscriptions.terminate", "success", "lago", 200),
        ("subscriptions.terminate", "rejected", None, 422),
        ("subscriptions.terminate", "success", "lago", 200),
    ]


async def test_update_passes_the_change_through(gateway: Gateway) -> None:
    await seed_catalog(gateway)
    writer = await gateway.headers("billing:write")
    ok(await gateway.client.post("/api/v1/subscriptions", json=_sub(BASIC), headers=writer))
    change = {"subscription": {"name": "Workspace A", "ending_at": "2031-01-01T00:00:00Z"}}
    body = ok(
        await gateway.client.put("/api/v1/subscriptions/sub_acme", json=change, headers=writer)
    )
    assert body["subscription"]["name"] == "Workspace A"
    assert gateway.emulator.subscription("sub_acme")["ending_at"] == "2031-01-01T00:00:00Z"
    assert outcomes(await audit_rows(gateway, "subscriptions.update")) == [
        ("subscriptions.update", "success", "lago", 200)
    ]


async def test_an_unknown_plan_is_lagos_404_and_creates_nothing(gateway: Gateway) -> None:
    await seed_catalog(gateway)
    writer = await gateway.headers("billing:write")
    response = await gateway.client.post(
        "/api/v1/subscriptions", json=_sub("platinum"), headers=writer
    )
    assert response.status_code == 404
    assert response.json() == {"status": 404, "error": "Not Found", "code": "plan_not_found"}
    assert gateway.emulator.subscriptions == {} and gateway.emulator.customers == {}
    rows = outcomes(await audit_rows(gateway))
    assert rows == [("subscriptions.create", "rejected", "lago", 404)]


async def test_missing_fields_are_named_before_lago_is_called(gateway: Gateway) -> None:
    writer = await gateway.headers("billing:write")
    response = await gateway.client.post(
        "/api/v1/subscriptions", json={"subscription": {"plan_code": None}}, headers=writer
    )
    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "external_customer_id": ["value_is_mandatory"],
        "plan_code": ["value_is_mandatory"],
        "external_id": ["value_is_mandatory"],
    }
    assert gateway.emulator.requests_by_status == {}
    assert outcomes(await audit_rows(gateway)) == [("subscriptions.create", "rejected", None, 422)]


async def test_lago_down_is_503_with_retry_after_and_audited_unavailable(gateway: Gateway) -> None:
    await seed_catalog(gateway)
    writer = await gateway.headers("billing:write")
    gateway.emulator.faults.outage(60)
    response = await gateway.client.post("/api/v1/subscriptions", json=_sub(BASIC), headers=writer)
    assert response.status_code == 503
    assert response.headers["retry-after"]
    gateway.emulator.faults.clear()
    assert gateway.emulator.subscriptions == {}
    assert outcomes(await audit_rows(gateway)) == [
        ("subscriptions.create", "unavailable", "lago", 503)
    ]
    assert await gateway.parts.lookups.subscription("sub_acme") is Known.NO


async def test_reads_need_billing_read_and_writes_billing_write(gateway: Gateway) -> None:
    reader = await gateway.headers("billing:read")
    writer = await gateway.headers("billing:write")
    refused = await gateway.client.post("/api/v1/subscriptions", json=_sub(BASIC), headers=reader)
    assert refused.status_code == 403
    assert refused.json()["code"] == "missing_scope"
    # Scopes are separate: a write-only key cannot read.
    assert (await gateway.client.get("/api/v1/subscriptions", headers=writer)).status_code == 403
    assert (await gateway.client.get("/api/v1/subscriptions", headers=reader)).status_code == 200
    assert await audit_rows(gateway) == []
