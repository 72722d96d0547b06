"""``POST /api/v1/invoices/{id}/payment_url`` when Lago collects: Lago's answer, audited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lago.emulator import EmulatorState
from lago.emulator.customers import upsert_customer
from tests.billing.support import audit_rows, outcomes
from tests.conftest import Gateway, make_settings, running_gateway


@pytest.fixture
async def lago_collects(database_url: str, emulator: EmulatorState) -> AsyncIterator[Gateway]:
    async with running_gateway(make_settings(database_url, collection="lago"), emulator) as gw:
        yield gw


async def test_lago_s_provider_url_and_refusal_pass_through(lago_collects: Gateway) -> None:
    lago = lago_collects.emulator
    upsert_customer(lago, {"external_id": "acme", "name": "Acme", "currency": "USD"})
    invoice = lago.issue_invoice("acme", 1500)
    headers = await lago_collects.headers("billing:write")
    path = f"/api/v1/invoices/{invoice['lago_id']}/payment_url"

    refused = await lago_collects.client.post(path, headers=headers)
    lago.customers["acme"]["billing_configuration"]["payment_provider"] = "stripe"
    answered = await lago_collects.client.post(path, headers=headers)

    assert refused.status_code == 422
    assert refused.json()["error_details"] == {"base": ["no_linked_payment_provider"]}
    assert answered.status_code == 200
    details = answered.json()["invoice_payment_details"]
    assert details["lago_invoice_id"] == invoice["lago_id"]
    assert details["payment_url"].startswith("https://")
    assert outcomes(await audit_rows(lago_collects, "invoices.payment_url")) == [
        ("invoices.payment_url", "rejected", "lago", 422),
        ("invoices.payment_url", "success", "lago", 200),
    ]
