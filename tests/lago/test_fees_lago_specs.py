"""Lago's spec/requests/api/v1/fees_controller_spec.rb (the reads: ``GET /api/v1/fees`` and
``GET /api/v1/fees/:id``), ported to the emulator, with app/queries/fees_query.rb's filters.

Not ported: ``PUT`` and ``DELETE /api/v1/fees/:id`` (they act on pay-in-advance fees without
an invoice, which the emulator never makes) and API key permissions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lago.emulator import EmulatorState, create_app
from lago.emulator.customers import upsert_customer

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def checked(
    state: EmulatorState, make_client: Any, require_spec: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator with every exchange checked, and a one-off invoice of an add-on fee
    beside a subscription invoice."""
    upsert_customer(state, {"external_id": "cust", "name": "Cust", "currency": "EUR"})
    state.issue_invoice("cust", 1000, currency="EUR")
    async with make_client(create_app(state, api_key="test-lago-key", validate=True)) as client:
        add_on = {"name": "Setup", "code": "setup", "amount_cents": 300, "amount_currency": "EUR"}
        assert (await client.post("/add_ons", json={"add_on": add_on})).status_code == 200
        invoice = {"external_customer_id": "cust", "fees": [{"add_on_code": "setup"}]}
        assert (await client.post("/invoices", json={"invoice": invoice})).status_code == 200
        yield client
    assert state.contract_violations == []


async def test_show_an_add_on_fee(checked: httpx.AsyncClient, state: EmulatorState) -> None:
    """GET /api/v1/fees/:id, context "when fee is an add-on fee": it "returns a fee"."""
    invoice = next(i for i in state.invoices.values() if i["invoice_type"] == "one_off")
    fee_id = invoice["fees"][0]["lago_id"]

    response = await checked.get(f"/fees/{fee_id}")

    assert response.status_code == 200
    fee = response.json()["fee"]
    assert (fee["lago_id"], fee["amount_cents"], fee["amount_currency"]) == (fee_id, 300, "EUR")
    assert (fee["units"], fee["applied_taxes"]) == ("1.0", [])
    assert (fee["item"]["type"], fee["item"]["code"], fee["item"]["name"]) == (
        "add_on",
        "setup",
        "Setup",
    )


async def test_show_an_unknown_fee(checked: httpx.AsyncClient) -> None:
    """GET /api/v1/fees/:id, context "when fee does not exist"."""
    response = await checked.get("/fees/7c5a8ed4-1d58-4c5c-8f3f-1a2b3c4d5e6f")

    assert response.status_code == 404
    assert response.json()["code"] == "fee_not_found"


async def test_list_fees_oldest_first_and_filtered(checked: httpx.AsyncClient) -> None:
    """GET /api/v1/fees, context "without params" (every fee, ``created_at`` ascending), and
    FeesQuery's ``fee_type`` and ``external_customer_id`` filters."""
    everything = await checked.get("/fees")
    add_ons = await checked.get("/fees", params={"fee_type": "add_on"})
    nobody = await checked.get("/fees", params={"external_customer_id": "nobody"})

    assert [f["item"]["type"] for f in everything.json()["fees"]] == ["subscription", "add_on"]
    assert everything.json()["meta"]["total_count"] == 2
    assert [f["item"]["code"] for f in add_ons.json()["fees"]] == ["setup"]
    assert nobody.json()["fees"] == []


async def test_list_fees_with_an_invalid_filter(lago: httpx.AsyncClient) -> None:
    """GET /api/v1/fees, context "with an invalid filter" (outside the spec's enum, so sent
    unchecked)."""
    response = await lago.get("/fees", params={"fee_type": "invalid_filter"})

    assert response.status_code == 422
    assert response.json()["error_details"] == {"fee_type": ["value_is_invalid"]}
