"""The Lago-compatible invoice surface: filters passed through, scopes, every write audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from gateway.audit.models import AuditEntry
from lago.emulator.customers import upsert_customer
from tests.conftest import Gateway


def _customers(gateway: Gateway) -> None:
    upsert_customer(gateway.emulator, {"external_id": "acme", "name": "Acme", "currency": "USD"})
    upsert_customer(gateway.emulator, {"external_id": "globex", "currency": "EUR"})


async def _audit(gateway: Gateway, action: str) -> list[AuditEntry]:
    async with gateway.runtime.database.session() as session:
        result = await session.exec(select(AuditEntry).where(AuditEntry.action == action))
        return list(result.all())


async def test_list_passes_lago_filters_and_pagination_through(gateway: Gateway) -> None:
    _customers(gateway)
    gateway.emulator.issue_invoice("acme", 100)
    gateway.emulator.issue_invoice("acme", 200, status="draft")
    gateway.emulator.issue_invoice("globex", 300, currency="EUR", invoice_type="one_off")
    headers = await gateway.headers("billing:read")

    async def amounts(params: Any) -> list[int]:
        answer = await gateway.client.get("/api/v1/invoices", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return sorted(i["total_amount_cents"] for i in answer.json()["invoices"])

    assert await amounts({}) == [100, 200, 300]
    assert await amounts({"external_customer_id": "acme"}) == [100, 200]
    assert await amounts({"status": "draft"}) == [200]
    assert await amounts({"statuses[]": ["finalized"], "currency": "EUR"}) == [300]
    assert await amounts({"invoice_type": "one_off"}) == [300]
    assert await amounts({"issuing_date_from": "2000-01-01", "issuing_date_to": "2000-01-02"}) == []
    page = await gateway.client.get(
        "/api/v1/invoices", params={"per_page": 2, "page": 2}, headers=headers
    )
    assert page.json()["meta"]["current_page"] == 2
    assert page.json()["meta"]["total_count"] == 3
    assert len(page.json()["invoices"]) == 1


async def test_malformed_filters_are_refused_in_lagos_error_shape(gateway: Gateway) -> None:
    headers = await gateway.headers("billing:read")

    answer = await gateway.client.get(
        "/api/v1/invoices",
        params={"issuing_date_from": "yesterday", "status": "paid", "per_page": 1000},
        headers=headers,
    )

    assert answer.status_code == 422
    assert answer.json()["code"] == "validation_errors"
    assert set(answer.json()["error_details"]) == {"issuing_date_from", "statuses", "per_page"}


async def test_one_invoice_has_its_fees_and_unknown_ids_are_404(gateway: Gateway) -> None:
    _customers(gateway)
    issued = gateway.emulator.issue_invoice("acme", 1500)
    headers = await gateway.headers("billing:read")

    found = await gateway.client.get(f"/api/v1/invoices/{issued['lago_id']}", headers=headers)
    missing = await gateway.client.get("/api/v1/invoices/nope", headers=headers)
    traversal = await gateway.client.get("/api/v1/invoices/..%2Fcustomers", headers=headers)

    assert found.json()["invoice"]["fees"][0]["amount_cents"] == 1500
    assert missing.status_code == 404
    assert missing.json()["code"] == "invoice_not_found"
    assert traversal.status_code == 404


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("PUT", "/refresh"), ("PUT", "/finalize"), ("POST", "/void"), ("PUT", "")],
)
async def test_writes_need_billing_write(gateway: Gateway, method: str, suffix: str) -> None:
    _customers(gateway)
    issued = gateway.emulator.issue_invoice("acme", 100, status="draft")
    headers = await gateway.headers("billing:read")

    answer = await gateway.client.request(
        method,
        f"/api/v1/invoices/{issued['lago_id']}{suffix}",
        headers=headers,
        json={"invoice": {"payment_status": "succeeded"}},
    )

    assert answer.status_code == 403


async def test_draft_lifecycle_is_passed_to_lago_and_audited(gateway: Gateway) -> None:
    _customers(gateway)
    draft = gateway.emulator.issue_invoice("acme", 700, status="draft")
    headers = await gateway.headers("billing:write")
    path = f"/api/v1/invoices/{draft['lago_id']}"

    refreshed = await gateway.client.put(f"{path}/refresh", headers=headers)
    finalized = await gateway.client.put(f"{path}/finalize", headers=headers)
    again = await gateway.client.put(f"{path}/finalize", headers=headers)

    assert refreshed.status_code == 200
    assert finalized.json()["invoice"]["status"] == "finalized"
    assert again.status_code == 404  # Lago: finalize is for drafts only
    audited = await _audit(gateway, "invoices.finalize")
    assert [(a.outcome, a.status, a.target) for a in audited] == [
        ("success", 200, draft["lago_id"]),
        ("rejected", 404, draft["lago_id"]),
    ]
    assert audited[0].upstream == "lago"
    assert (await _audit(gateway, "invoices.refresh"))[0].outcome == "success"


async def test_void_and_payment_status_update(gateway: Gateway) -> None:
    _customers(gateway)
    first = gateway.emulator.issue_invoice("acme", 100)
    second = gateway.emulator.issue_invoice("acme", 200)
    headers = await gateway.headers("billing:write")

    voided = await gateway.client.post(f"/api/v1/invoices/{first['lago_id']}/void", headers=headers)
    paid = await gateway.client.put(
        f"/api/v1/invoices/{second['lago_id']}",
        json={"invoice": {"payment_status": "succeeded"}},
        headers=headers,
    )
    no_root = await gateway.client.put(
        f"/api/v1/invoices/{second['lago_id']}", json={"payment_status": "x"}, headers=headers
    )

    assert voided.json()["invoice"]["status"] == "voided"
    assert paid.json()["invoice"]["payment_status"] == "succeeded"
    assert gateway.emulator.invoices[second["lago_id"]]["payment_status"] == "succeeded"
    assert no_root.status_code == 400
    assert len(await _audit(gateway, "invoices.void")) == 1
    assert len(await _audit(gateway, "invoices.update")) == 1


async def test_retry_payment_in_lago_mode_is_passed_to_lago(
    database_url: str, emulator: Any
) -> None:
    from tests.conftest import make_settings, start_gateway

    upsert_customer(emulator, {"external_id": "acme", "currency": "USD"})
    issued = emulator.issue_invoice("acme", 100)
    gw, manager = await start_gateway(make_settings(database_url, collection="lago"), emulator)
    try:
        headers = await gw.headers("billing:write")
        answer = await gw.client.post(
            f"/api/v1/invoices/{issued['lago_id']}/retry_payment", headers=headers
        )
        assert answer.status_code == 200
        assert answer.content == b""
        assert emulator.invoices[issued["lago_id"]]["payment_attempts"] == 1
        assert (await _audit(gw, "invoices.retry_payment"))[0].outcome == "success"
    finally:
        await gw.client.aclose()
        await manager.__aexit__(None, None, None)
