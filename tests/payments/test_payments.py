"""Lago's payment routes pass through; Lago's webhook key is refused with what to use."""

from __future__ import annotations

from lago.emulator.payments import record_payment
from tests.billing.support import ok
from tests.conftest import Gateway


async def _paid(gateway: Gateway, customer: str, cents: int) -> dict[str, object]:
    writer = await gateway.headers("billing:write")
    body = {"customer": {"external_id": customer, "currency": "USD"}}
    ok(await gateway.client.post("/api/v1/customers", json=body, headers=writer))
    invoice = gateway.emulator.issue_invoice(customer, cents)
    return record_payment(gateway.emulator, invoice["lago_id"], cents)


async def test_the_list_passes_lagos_filters_and_pagination(gateway: Gateway) -> None:
    acme = await _paid(gateway, "acme", 1000)
    await _paid(gateway, "other", 500)
    reader = await gateway.headers("billing:read")
    mine = ok(
        await gateway.client.get("/api/v1/payments?external_customer_id=acme", headers=reader)
    )
    assert [p["lago_id"] for p in mine["payments"]] == [acme["lago_id"]]
    by_invoice = ok(
        await gateway.client.get(
            f"/api/v1/payments?invoice_id={acme['lago_payable_id']}", headers=reader
        )
    )
    assert [p["lago_id"] for p in by_invoice["payments"]] == [acme["lago_id"]]
    page = ok(await gateway.client.get("/api/v1/payments?per_page=1&page=2", headers=reader))
    assert len(page["payments"]) == 1 and page["meta"]["total_count"] == 2


async def test_one_payment_and_ids_lago_cannot_hold(gateway: Gateway) -> None:
    acme = await _paid(gateway, "acme", 1000)
    reader = await gateway.headers("billing:read")
    found = ok(await gateway.client.get(f"/api/v1/payments/{acme['lago_id']}", headers=reader))
    assert found["payment"] == acme
    calls = sum(gateway.emulator.requests_by_status.values())
    missing = await gateway.client.get("/api/v1/payments/not-a-uuid", headers=reader)
    assert (missing.status_code, missing.json()["code"]) == (404, "payment_not_found")
    assert sum(gateway.emulator.requests_by_status.values()) == calls  # Lago not asked


async def test_lagos_webhook_key_is_not_served(gateway: Gateway) -> None:
    reader = await gateway.headers("billing:read")
    for path in ("/api/v1/webhooks/public_key", "/api/v1/webhooks/json_public_key"):
        refused = await gateway.client.get(path, headers=reader)
        assert refused.status_code == 405
        body = refused.json()
        assert (body["status"], body["code"]) == (405, "not_served_by_gateway")
        assert body["error_details"]["use"] == "GET /gateway/endpoints/{endpoint_id}/secret"
        assert "relay" in body["error_details"]["message"]


async def test_payments_need_billing_read(gateway: Gateway) -> None:
    events = await gateway.headers("events:write")
    for path in ("/api/v1/payments", "/api/v1/webhooks/json_public_key"):
        refused = await gateway.client.get(path, headers=events)
        assert (refused.status_code, refused.json()["code"]) == (403, "missing_scope")
    anonymous = await gateway.client.get("/api/v1/payments")
    assert anonymous.status_code == 401
