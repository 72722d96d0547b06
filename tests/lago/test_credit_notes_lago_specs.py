"""Lago's spec/requests/api/v1/credit_notes_controller_spec.rb, ported to the emulator.

Each test names the ``describe``/``context``/``it`` it ports. Not ported: draft and deleted
credit notes (the emulator makes neither), metadata, PDF/XML downloads, credit invoices and
wallets, offsets' invoice settlements, ``estimate`` and ``void``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState
from lago.emulator.customers import upsert_customer

pytestmark = pytest.mark.asyncio

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def invoice(state: EmulatorState) -> dict[str, Any]:
    """A finalized 20.00 EUR invoice of two fees (10.00 each), paid."""
    upsert_customer(state, {"external_id": "acme", "currency": "EUR"})
    issued = state.issue_invoice(
        "acme", 0, currency="EUR", fees=[{"amount_cents": 1000}, {"amount_cents": 1000}]
    )
    stored = state.invoices[issued["lago_id"]]
    stored.update(payment_status="succeeded", total_paid_amount_cents=2000)
    return stored


def note(invoice: dict[str, Any], *amounts: int, **params: Any) -> dict[str, Any]:
    """A credit note body with one item of each amount, on the invoice's fees in order."""
    items = [
        {"fee_id": fee["lago_id"], "amount_cents": amount}
        for fee, amount in zip(invoice["fees"], amounts, strict=False)
    ]
    return {"credit_note": {"invoice_id": invoice["lago_id"], "items": items, **params}}


async def created(lago: httpx.AsyncClient, invoice: dict[str, Any]) -> dict[str, Any]:
    response = await lago.post(
        "/credit_notes", json=note(invoice, 10, 5, credit_amount_cents=10, refund_amount_cents=5)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["credit_note"]
    return body


async def test_create_returns_the_credit_note(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: POST /api/v1/credit_notes, it "creates a credit
    note"."""
    response = await lago.post(
        "/credit_notes",
        json=note(
            invoice,
            10,
            5,
            reason="duplicated_charge",
            description="Duplicated charge",
            credit_amount_cents=10,
            refund_amount_cents=5,
        ),
    )

    assert response.status_code == 200
    body = response.json()["credit_note"]
    expected = {
        "credit_status": "available",
        "refund_status": "pending",
        "reason": "duplicated_charge",
        "description": "Duplicated charge",
        "currency": "EUR",
        "total_amount_cents": 15,
        "credit_amount_cents": 10,
        "balance_amount_cents": 10,
        "refund_amount_cents": 5,
        "applied_taxes": [],
    }
    assert {key: body[key] for key in expected} == expected
    assert body["customer"]["external_id"] == "acme"
    assert [(i["amount_cents"], i["amount_currency"]) for i in body["items"]] == [
        (10, "EUR"),
        (5, "EUR"),
    ]
    assert [i["fee"]["lago_id"] for i in body["items"]] == [f["lago_id"] for f in invoice["fees"]]


async def test_create_on_an_unknown_invoice_is_404(lago: httpx.AsyncClient) -> None:
    """credit_notes_controller_spec.rb: POST, context "when invoice is not found", it
    "returns not found"."""
    response = await lago.post(
        "/credit_notes", json={"credit_note": {"invoice_id": UNKNOWN, "items": []}}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "invoice_not_found"


async def test_a_zero_total_is_total_amount_must_be_positive(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: POST, context "when total amount is zero", it
    "returns validation error"."""
    body = note(invoice, 0, 0, credit_amount_cents=0, refund_amount_cents=0)

    response = await lago.post("/credit_notes", json=body)

    assert response.status_code == 422
    assert response.json()["error_details"]["base"] == ["total_amount_must_be_positive"]


async def test_only_an_offset(
    lago: httpx.AsyncClient, state: EmulatorState, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: POST, context "with only offset_amount_cents (no
    credit or refund)", it "creates credit note with only offset amount"."""
    invoice.update(payment_status="pending", total_paid_amount_cents=0)

    response = await lago.post("/credit_notes", json=note(invoice, 10, offset_amount_cents=10))

    assert response.status_code == 200
    body = response.json()["credit_note"]
    assert (body["offset_amount_cents"], body["total_amount_cents"]) == (10, 10)
    assert (body["credit_amount_cents"], body["refund_amount_cents"]) == (0, 0)
    assert body["refund_status"] is None


async def test_items_must_be_a_list(lago: httpx.AsyncClient, invoice: dict[str, Any]) -> None:
    """CreditNotes::CreateService#create_items: ``items: ["must_be_an_array"]``."""
    body = {"credit_note": {"invoice_id": invoice["lago_id"], "credit_amount_cents": 10}}

    response = await lago.post("/credit_notes", json=body)

    assert response.status_code == 422
    assert response.json()["error_details"] == {"items": ["must_be_an_array"]}


async def test_an_item_of_an_unknown_fee_is_404(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """CreditNotes::ValidateItemService#valid_fee?: ``not_found_failure!(resource: "fee")``."""
    body = {
        "credit_note": {
            "invoice_id": invoice["lago_id"],
            "credit_amount_cents": 10,
            "items": [{"fee_id": UNKNOWN, "amount_cents": 10}],
        }
    }

    response = await lago.post("/credit_notes", json=body)

    assert response.status_code == 404
    assert response.json()["code"] == "fee_not_found"


async def test_an_item_above_what_is_left_of_its_fee(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """CreditNotes::ValidateItemService#valid_individual_amount?: what earlier credit notes
    took from the fee is no longer creditable."""
    first = await lago.post("/credit_notes", json=note(invoice, 800, credit_amount_cents=800))

    second = await lago.post("/credit_notes", json=note(invoice, 300, credit_amount_cents=300))

    assert first.status_code == 200
    assert second.status_code == 422
    assert second.json()["error_details"] == {"amount_cents": ["higher_than_remaining_fee_amount"]}


async def test_amounts_not_matching_the_items(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """CreditNotes::ValidateService#valid_items_amount?."""
    response = await lago.post("/credit_notes", json=note(invoice, 10, credit_amount_cents=20))

    assert response.status_code == 422
    assert response.json()["error_details"] == {"base": ["does_not_match_item_amounts"]}


async def test_a_refund_of_an_unpaid_invoice(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """CreditNotes::ValidateService#valid_refund_amount?: nothing paid, nothing refunded."""
    invoice.update(payment_status="pending", total_paid_amount_cents=0)

    response = await lago.post("/credit_notes", json=note(invoice, 10, refund_amount_cents=10))

    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "refund_amount_cents": ["cannot_refund_unpaid_invoice"]
    }


async def test_a_refund_above_what_was_paid(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """CreditNotes::ValidateService#valid_refund_amount?: earlier refunds count."""
    invoice["total_paid_amount_cents"] = 500
    first = await lago.post("/credit_notes", json=note(invoice, 400, refund_amount_cents=400))

    second = await lago.post("/credit_notes", json=note(invoice, 200, refund_amount_cents=200))

    assert first.status_code == 200
    assert second.json()["error_details"] == {
        "refund_amount_cents": ["higher_than_remaining_invoice_amount"]
    }


async def test_show_returns_the_credit_note(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: GET /api/v1/credit_notes/:id, it "returns a credit
    note"."""
    made = await created(lago, invoice)

    response = await lago.get(f"/credit_notes/{made['lago_id']}")

    assert response.status_code == 200
    body = response.json()["credit_note"]
    assert (body["lago_id"], body["lago_invoice_id"]) == (made["lago_id"], invoice["lago_id"])
    assert body["invoice_number"] == invoice["number"]


@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_an_unknown_credit_note_is_404(lago: httpx.AsyncClient, method: str) -> None:
    """credit_notes_controller_spec.rb: GET and PUT, context "when credit note does not
    exist(s)", it "returns (a) not found (error)"."""
    body = {"credit_note": {"refund_status": "succeeded"}} if method == "PUT" else None

    response = await lago.request(method, f"/credit_notes/{UNKNOWN}", json=body)

    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "error": "Not Found",
        "code": "credit_note_not_found",
    }


async def test_update_sets_the_refund_status(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: PUT /api/v1/credit_notes/:id, it "updates the credit
    note"."""
    made = await created(lago, invoice)

    response = await lago.put(
        f"/credit_notes/{made['lago_id']}", json={"credit_note": {"refund_status": "succeeded"}}
    )

    assert response.status_code == 200
    body = response.json()["credit_note"]
    assert (body["lago_id"], body["refund_status"]) == (made["lago_id"], "succeeded")
    assert body["customer"]["external_id"] == "acme"


async def test_update_with_an_invalid_refund_status(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: PUT, context "when provided refund status is
    invalid", it "returns an unprocessable entity error"."""
    made = await created(lago, invoice)

    response = await lago.put(
        f"/credit_notes/{made['lago_id']}",
        json={"credit_note": {"refund_status": "invalid_status"}},
    )

    assert response.status_code == 422
    assert response.json()["error_details"] == {"refund_status": ["value_is_invalid"]}


async def test_update_without_the_root_key_is_400(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """CreditNotesController#update_params: ``params.require(:credit_note)``."""
    made = await created(lago, invoice)

    response = await lago.put(f"/credit_notes/{made['lago_id']}", json={"refund_status": "x"})

    assert response.status_code == 400


async def test_index_filters_by_customer(
    lago: httpx.AsyncClient, state: EmulatorState, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: GET /api/v1/credit_notes, context "with
    external_customer_id filter", it "returns credit notes of the customer"."""
    made = await created(lago, invoice)
    upsert_customer(state, {"external_id": "globex", "currency": "EUR"})

    mine = await lago.get("/credit_notes", params={"external_customer_id": "acme"})
    theirs = await lago.get("/credit_notes", params={"external_customer_id": "globex"})

    assert [n["lago_id"] for n in mine.json()["credit_notes"]] == [made["lago_id"]]
    assert mine.json()["credit_notes"][0]["customer"]["external_id"] == "acme"
    assert theirs.json()["credit_notes"] == []
