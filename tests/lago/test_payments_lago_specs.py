"""Lago's spec/requests/api/v1/payments_controller_spec.rb (index, show),
customers/payments_controller_spec.rb and customers/payment_methods_controller_spec.rb
(index), ported to the emulator, every answer checked against Lago's OpenAPI spec.

Not ported: ``POST /payments`` (manual payments), payment requests as payables, and the
payment method cases that need one (the emulator has no payment provider), set_as_default
and destroy.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lago.emulator import EmulatorState, create_app
from lago.emulator.payments import record_payment

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("require_spec")]

PAYMENT_KEYS = [
    "lago_id",
    "lago_customer_id",
    "external_customer_id",
    "invoice_ids",
    "invoice_numbers",
    "lago_payable_id",
    "payable_type",
    "amount_cents",
    "amount_currency",
    "status",
    "payment_status",
    "type",
    "reference",
    "payment_provider_code",
    "payment_provider_type",
    "external_payment_id",
    "provider_payment_id",
    "provider_customer_id",
    "next_action",
    "created_at",
]


@pytest_asyncio.fixture
async def checked(state: EmulatorState, make_client: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(create_app(state, api_key="test-lago-key", validate=True)) as client:
        yield client
    assert state.contract_violations == []


async def customers(lago: httpx.AsyncClient, *external_ids: str) -> None:
    for external_id in external_ids:
        body = {"customer": {"external_id": external_id, "currency": "USD"}}
        assert (await lago.post("/customers", json=body)).status_code == 200


def paid(state: EmulatorState, customer: str, cents: int) -> dict[str, Any]:
    invoice = state.issue_invoice(customer, cents)
    return record_payment(state, invoice["lago_id"], cents)


async def test_index_with_external_customer_id_returns_the_payments_of_the_customer(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    # describe "GET /api/v1/payments", context "with external customer id"
    await customers(checked, "acme", "other")
    payment_1 = paid(state, "acme", 1000)
    paid(state, "other", 500)
    listed = (await checked.get("/payments?external_customer_id=acme")).json()
    assert [p["lago_id"] for p in listed["payments"]] == [payment_1["lago_id"]]
    assert list(listed["payments"][0]) == PAYMENT_KEYS
    every = (await checked.get("/payments")).json()
    assert every["meta"]["total_count"] == 2


async def test_index_by_invoice_and_its_format(
    checked: httpx.AsyncClient, lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await customers(checked, "acme")
    payment = paid(state, "acme", 1000)
    paid(state, "acme", 300)
    by_invoice = await checked.get(f"/payments?invoice_id={payment['lago_payable_id']}")
    assert [p["lago_id"] for p in by_invoice.json()["payments"]] == [payment["lago_id"]]
    # PaymentsQueryFiltersContract: invoice_id is a UUID (the spec declares it so: unchecked)
    wrong = await lago.get("/payments?invoice_id=nope")
    assert wrong.status_code == 422
    assert wrong.json()["error_details"] == {"invoice_id": ["is in invalid format"]}


async def test_show_returns_the_payment(checked: httpx.AsyncClient, state: EmulatorState) -> None:
    # describe "GET /api/v1/payments/:id", context "when payment exists"
    await customers(checked, "acme")
    payment = paid(state, "acme", 1000)
    response = await checked.get(f"/payments/{payment['lago_id']}")
    assert response.status_code == 200
    assert response.json()["payment"]["lago_id"] == payment["lago_id"]
    assert response.json()["payment"]["invoice_ids"] == [payment["lago_payable_id"]]
    assert list(response.json()["payment"]) == PAYMENT_KEYS


async def test_show_when_payment_does_not_exist(checked: httpx.AsyncClient) -> None:
    # context "when payment does not exist": not found
    response = await checked.get(f"/payments/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["code"] == "payment_not_found"


async def test_customer_payments(checked: httpx.AsyncClient, state: EmulatorState) -> None:
    # customers/payments_controller_spec.rb: "a payment index endpoint" for the customer;
    # context "with an invoice belonging to a different customer": an empty result
    await customers(checked, "acme", "other")
    payment = paid(state, "acme", 1000)
    other = paid(state, "other", 200)
    listed = (await checked.get("/customers/acme/payments")).json()
    assert [p["lago_id"] for p in listed["payments"]] == [payment["lago_id"]]
    foreign = await checked.get(f"/customers/acme/payments?invoice_id={other['lago_payable_id']}")
    assert foreign.status_code == 200 and foreign.json()["payments"] == []


async def test_customer_payment_methods_without_a_provider(checked: httpx.AsyncClient) -> None:
    # customers/payment_methods_controller_spec.rb, index of a customer with none
    await customers(checked, "acme")
    listed = (await checked.get("/customers/acme/payment_methods")).json()
    assert listed == {
        "payment_methods": [],
        "meta": {
            "current_page": 0,
            "next_page": None,
            "prev_page": None,
            "total_pages": 0,
            "total_count": 0,
        },
    }
