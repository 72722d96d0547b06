"""Lago's spec/requests/api/v1/credit_notes_controller_spec.rb, ported to the emulator.

Each test names the ``describe``/``context``/``it`` it ports (or the Lago service behind
it). Not ported: draft and deleted credit notes (the emulator makes neither), XML downloads,
``resend_email``, offsets' invoice settlements, taxes and coupon adjustments (the emulator's
fees carry none).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lago.emulator import EmulatorState, create_app
from lago.emulator.customers import upsert_customer
from lago.emulator.wallets import create_wallet, settle_paid_credits, top_up
from lago.emulator.webhook_endpoints import create_endpoint

pytestmark = pytest.mark.asyncio

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest_asyncio.fixture
async def checked(
    state: EmulatorState, make_client: Any, require_spec: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator with every exchange checked against Lago's OpenAPI spec (the tests of
    refusals use ``lago``: Lago's spec declares neither their bodies nor their statuses)."""
    async with make_client(create_app(state, api_key="test-lago-key", validate=True)) as client:
        yield client
    assert state.contract_violations == [], "\n\n".join(state.contract_violations)


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


async def test_void_voids_the_credit_note(lago: httpx.AsyncClient, invoice: dict[str, Any]) -> None:
    """credit_notes_controller_spec.rb: PUT /api/v1/credit_notes/:id/void, it "voids the
    credit note"."""
    made = await created(lago, invoice)

    response = await lago.put(f"/credit_notes/{made['lago_id']}/void")

    assert response.status_code == 200
    body = response.json()["credit_note"]
    assert (body["lago_id"], body["credit_status"], body["balance_amount_cents"]) == (
        made["lago_id"],
        "voided",
        0,
    )
    assert body["customer"]["lago_id"] == invoice["customer"]["lago_id"]


async def test_void_of_an_unknown_credit_note_is_404(lago: httpx.AsyncClient) -> None:
    """credit_notes_controller_spec.rb: void, context "when credit note does not exist"."""
    response = await lago.put(f"/credit_notes/{UNKNOWN}/void")

    assert response.status_code == 404
    assert response.json()["code"] == "credit_note_not_found"


async def test_void_with_nothing_left_is_405(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: void, context "when credit note is not voidable"
    (CreditNotes::VoidService: ``no_voidable_amount``); a refund-only note has no balance."""
    made = await created(lago, invoice)
    await lago.put(f"/credit_notes/{made['lago_id']}/void")
    refund_only = await lago.post("/credit_notes", json=note(invoice, 5, refund_amount_cents=5))

    again = await lago.put(f"/credit_notes/{made['lago_id']}/void")
    nothing = await lago.put(f"/credit_notes/{refund_only.json()['credit_note']['lago_id']}/void")

    for response in (again, nothing):
        assert response.status_code == 405
        assert response.json()["code"] == "no_voidable_amount"


async def test_estimate_returns_the_computed_amounts(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: POST /api/v1/credit_notes/estimate, it "returns the
    computed amounts for credit note creation" (nothing paid: nothing refundable)."""
    invoice.update(payment_status="pending", total_paid_amount_cents=0)
    body = {
        "credit_note": {
            "invoice_id": invoice["lago_id"],
            "items": note(invoice, 50, 50)["credit_note"]["items"],
        }
    }

    response = await lago.post("/credit_notes/estimate", json=body)

    assert response.status_code == 200
    estimated = response.json()["estimated_credit_note"]
    assert estimated["lago_invoice_id"] == invoice["lago_id"]
    assert estimated["invoice_number"] == invoice["number"]
    assert (estimated["currency"], estimated["taxes_amount_cents"]) == ("EUR", 0)
    assert estimated["sub_total_excluding_taxes_amount_cents"] == 100
    assert (estimated["max_creditable_amount_cents"], estimated["max_refundable_amount_cents"]) == (
        100,
        0,
    )
    assert estimated["coupons_adjustment_amount_cents"] == 0
    # Types::CreditNotes::Estimate#max_offsettable_amount_cents: due, clamped to the credit
    assert estimated["max_offsettable_amount_cents"] == 100
    assert [i["amount_cents"] for i in estimated["items"]] == [50, 50]
    assert estimated["applied_taxes"] == []


async def test_estimate_caps_the_refund_at_what_was_paid(
    lago: httpx.AsyncClient, state: EmulatorState, invoice: dict[str, Any]
) -> None:
    """CreditNotes::EstimateService#compute_refundable_amount: ``refundable_amount_cents``
    is what was paid less what was refunded."""
    await lago.post("/credit_notes", json=note(invoice, 1000, refund_amount_cents=1000))
    invoice["total_paid_amount_cents"] = 1500
    body = {
        "credit_note": {
            "invoice_id": invoice["lago_id"],
            "items": note(invoice, 0, 1000)["credit_note"]["items"],
        }
    }

    estimated = (await lago.post("/credit_notes/estimate", json=body)).json()

    assert estimated["estimated_credit_note"]["max_creditable_amount_cents"] == 1000
    assert estimated["estimated_credit_note"]["max_refundable_amount_cents"] == 500
    assert len(state.credit_notes) == 1


async def test_estimate_of_an_unknown_invoice_is_404(lago: httpx.AsyncClient) -> None:
    """credit_notes_controller_spec.rb: estimate, context "with invalid invoice"."""
    body = {"credit_note": {"invoice_id": UNKNOWN, "items": []}}

    response = await lago.post("/credit_notes/estimate", json=body)

    assert response.status_code == 404
    assert response.json()["code"] == "invoice_not_found"


async def test_download_pdf_returns_the_credit_note_once_its_file_exists(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: POST /api/v1/credit_notes/:id/download_pdf, context
    "when a file is attached to the credit note" (GenerateDocumentsJob ran after create);
    the answer has no includes."""
    made = await created(lago, invoice)

    for path in ("download", "download_pdf"):
        response = await lago.post(f"/credit_notes/{made['lago_id']}/{path}")
        assert response.status_code == 200
        body = response.json()["credit_note"]
        assert body["lago_id"] == made["lago_id"] and body["file_url"]
        assert "customer" not in body and "items" not in body


async def test_download_pdf_without_a_file_enqueues_its_generation(
    lago: httpx.AsyncClient, state: EmulatorState, invoice: dict[str, Any]
) -> None:
    """credit_notes_controller_spec.rb: download_pdf, it "enqueues a job to generate the
    PDF": an empty 200."""
    made = await created(lago, invoice)
    state.credit_notes[made["lago_id"]]["file_url"] = None

    first = await lago.post(f"/credit_notes/{made['lago_id']}/download_pdf")
    second = await lago.post(f"/credit_notes/{made['lago_id']}/download_pdf")

    assert (first.status_code, first.content) == (200, b"")
    assert second.json()["credit_note"]["file_url"]


async def test_download_of_an_unknown_credit_note_is_404(lago: httpx.AsyncClient) -> None:
    """credit_notes_controller_spec.rb: download_pdf, "when credit note does not exist"."""
    response = await lago.post(f"/credit_notes/{UNKNOWN}/download")

    assert response.status_code == 404


async def test_create_with_metadata(lago: httpx.AsyncClient, invoice: dict[str, Any]) -> None:
    """credit_notes_controller_spec.rb: POST, contexts "with metadata", "with empty
    metadata"; GET "without metadata" returns none."""
    plain = await created(lago, invoice)
    tagged = await lago.post(
        "/credit_notes", json=note(invoice, 10, credit_amount_cents=10, metadata={"foo": "bar"})
    )
    empty = await lago.post(
        "/credit_notes", json=note(invoice, 10, credit_amount_cents=10, metadata={})
    )

    assert tagged.json()["credit_note"]["metadata"] == {"foo": "bar"}
    assert empty.json()["credit_note"]["metadata"] == {}
    assert (
        "metadata"
        not in (await lago.get(f"/credit_notes/{plain['lago_id']}")).json()["credit_note"]
    )


async def test_update_merges_metadata(lago: httpx.AsyncClient, invoice: dict[str, Any]) -> None:
    """credit_notes_controller_spec.rb: PUT, context "with metadata": "merges metadata (not
    replaces)", "updates the key value", "with empty metadata" keeps it."""
    made = (
        await lago.post(
            "/credit_notes", json=note(invoice, 10, credit_amount_cents=10, metadata={"a": "1"})
        )
    ).json()["credit_note"]
    path = f"/credit_notes/{made['lago_id']}"

    await lago.put(path, json={"credit_note": {"metadata": {"b": "2", "a": "3"}}})
    kept = await lago.put(path, json={"credit_note": {"metadata": {}}})

    assert kept.json()["credit_note"]["metadata"] == {"a": "3", "b": "2"}


async def test_an_unknown_reason_is_value_is_invalid(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """CreditNote ``enum :reason, validate: true``: the record is invalid on save."""
    response = await lago.post(
        "/credit_notes", json=note(invoice, 10, credit_amount_cents=10, reason="because")
    )

    assert response.status_code == 422
    assert response.json()["error_details"] == {"reason": ["value_is_invalid"]}


async def test_create_sends_created_and_generated_webhooks(
    lago: httpx.AsyncClient, state: EmulatorState, invoice: dict[str, Any]
) -> None:
    """CreateService#call after commit: ``credit_note.created``; GenerateDocumentsJob, then
    ``credit_note.generated`` with the file."""
    create_endpoint(state, {"webhook_url": "https://hooks.test/lago", "signature_algo": "hmac"})

    made = await created(lago, invoice)

    sent = [(w.webhook_type, w.payload["credit_note"]["lago_id"]) for w in state.webhooks_pending]
    assert sent == [
        ("credit_note.created", made["lago_id"]),
        ("credit_note.generated", made["lago_id"]),
    ]
    assert state.webhooks_pending[1].payload["credit_note"]["file_url"]


async def test_customer_index_lists_the_customers_credit_notes(
    lago: httpx.AsyncClient, state: EmulatorState, invoice: dict[str, Any]
) -> None:
    """customers/credit_notes_controller.rb#index (CreditNoteIndex with the path's
    customer); an unknown customer is 404 ``customer_not_found``."""
    made = await created(lago, invoice)
    upsert_customer(state, {"external_id": "globex", "currency": "EUR"})

    mine = await lago.get("/customers/acme/credit_notes")
    theirs = await lago.get("/customers/globex/credit_notes")
    unknown = await lago.get("/customers/nobody/credit_notes")

    assert [n["lago_id"] for n in mine.json()["credit_notes"]] == [made["lago_id"]]
    assert mine.json()["meta"]["total_count"] == 1
    assert theirs.json()["credit_notes"] == []
    assert (unknown.status_code, unknown.json()["code"]) == (404, "customer_not_found")


async def test_index_filters_as_credit_notes_query(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """CreditNotesQuery: reasons, statuses and types (unknown values dropped), amounts,
    invoice number, issuing dates, search term."""
    credit = await created(lago, invoice)  # credit 10 + refund 5
    refund = (
        await lago.post(
            "/credit_notes", json=note(invoice, 100, refund_amount_cents=100, reason="order_change")
        )
    ).json()["credit_note"]
    await lago.put(f"/credit_notes/{credit['lago_id']}/void")
    today = credit["issuing_date"]

    async def ids(**params: Any) -> list[str]:
        listed = (await lago.get("/credit_notes", params=params)).json()["credit_notes"]
        return [n["lago_id"] for n in listed]

    both = [refund["lago_id"], credit["lago_id"]]
    assert await ids(**{"reason[]": ["order_change", "nonsense"]}) == [refund["lago_id"]]
    assert await ids(reason="nonsense") == both
    assert await ids(credit_status="voided") == [credit["lago_id"]]
    assert await ids(refund_status="pending") == both
    assert await ids(**{"types[]": ["credit"]}) == [credit["lago_id"]]
    assert await ids(**{"types[]": ["nonsense"]}) == []
    assert await ids(amount_from=50) == [refund["lago_id"]]
    assert await ids(amount_to=50) == [credit["lago_id"]]
    assert await ids(invoice_number=invoice["number"]) == both
    assert await ids(invoice_number="nope") == []
    assert await ids(issuing_date_from=today, issuing_date_to=today) == both
    assert await ids(issuing_date_from="2999-01-01") == []
    assert await ids(issuing_date_from="not-a-date") == both
    assert await ids(search_term=refund["number"]) == [refund["lago_id"]]
    assert await ids(search_term="ACME") == both


async def test_index_with_an_unknown_billing_entity_is_404(lago: httpx.AsyncClient) -> None:
    """CreditNoteIndex#credit_note_index: ``not_found_error(resource: "billing_entity")``."""
    response = await lago.get("/credit_notes", params={"billing_entity_codes[]": "elsewhere"})

    assert (response.status_code, response.json()["code"]) == (404, "billing_entity_not_found")


def credit_invoice(state: EmulatorState, paid: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """A wallet (rate 0.05) topped up with 200 paid credits (a 10.00 credit invoice) and 100
    granted ones; the credit invoice paid (its credits settled) or still pending."""
    upsert_customer(state, {"external_id": "acme", "currency": "EUR"})
    wallet = create_wallet(
        state, {"external_customer_id": "acme", "currency": "EUR", "rate_amount": "0.05"}
    )
    [paid_credits] = top_up(state, wallet, {"paid_credits": "200", "granted_credits": "100"})[:1]
    stored = state.invoices[paid_credits["lago_invoice_id"]]
    if paid:
        stored.update(payment_status="succeeded", total_paid_amount_cents=1000)
        settle_paid_credits(state, stored)
    return stored, wallet


@pytest.mark.parametrize("payment_status", ["pending", "failed"])
async def test_an_unpaid_credit_invoice_takes_an_offset_only(
    lago: httpx.AsyncClient, state: EmulatorState, payment_status: str
) -> None:
    """credit_notes_controller_spec.rb: POST, context "with credit invoices", "when payment
    is pending" / "when payment failed": an offset of the whole is made, a credit is 405."""
    stored, _ = credit_invoice(state, paid=False)
    stored["payment_status"] = payment_status

    credit = await lago.post("/credit_notes", json=note(stored, 500, credit_amount_cents=500))
    offset = await lago.post("/credit_notes", json=note(stored, 1000, offset_amount_cents=1000))

    assert (credit.status_code, credit.json()["code"]) == (405, "invalid_type_or_status")
    assert offset.status_code == 200, offset.text
    assert offset.json()["credit_note"]["offset_amount_cents"] == 1000


async def test_a_credit_invoice_refund_voids_its_credits_from_the_wallet(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """CreditNotes::CreateService#void_prepaid_credit: the refunded amount's credits leave the
    wallet (a settled ``voided`` transaction naming the credit note); crediting is refused
    (ValidateService ``cannot_credit_invoice``)."""
    stored, wallet = credit_invoice(state, paid=True)

    credited = await lago.post("/credit_notes", json=note(stored, 400, credit_amount_cents=400))
    refunded = await lago.post("/credit_notes", json=note(stored, 400, refund_amount_cents=400))

    assert credited.json()["error_details"] == {"credit_amount_cents": ["cannot_credit_invoice"]}
    assert refunded.status_code == 200, refunded.text
    made = refunded.json()["credit_note"]
    [voided] = [
        t for t in state.wallet_transactions.values() if t["transaction_status"] == "voided"
    ]
    assert (voided["credit_amount"], voided["lago_credit_note_id"]) == ("80.0", made["lago_id"])
    assert (voided["status"], voided["transaction_type"]) == ("settled", "outbound")
    assert wallet["credits_balance"] == "220.0"


async def test_a_credit_invoice_refund_above_the_wallet_balance(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """CreditNotes::ValidateItemService#valid_individual_amount?: ``higher_than_wallet_balance``
    when the wallet holds less than the item (credits already spent)."""
    stored, wallet = credit_invoice(state, paid=True)
    top_up(state, wallet, {"voided_credits": "290"})  # 10 credits (0.50) left

    response = await lago.post("/credit_notes", json=note(stored, 100, refund_amount_cents=100))

    assert response.status_code == 422
    assert response.json()["error_details"] == {"amount_cents": ["higher_than_wallet_balance"]}


async def test_estimate_of_a_credit_invoice(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """CreditNotes::EstimateService: a credit invoice credits nothing and refunds up to the
    wallet's balance; unpaid, it is 405 ``invalid_type_or_status``."""
    stored, _ = credit_invoice(state, paid=True)
    body = {
        "credit_note": {
            "invoice_id": stored["lago_id"],
            "items": note(stored, 1000)["credit_note"]["items"],
        }
    }

    paid = (await lago.post("/credit_notes/estimate", json=body)).json()["estimated_credit_note"]
    stored["payment_status"] = "pending"
    unpaid = await lago.post("/credit_notes/estimate", json=body)

    assert (paid["max_creditable_amount_cents"], paid["max_refundable_amount_cents"]) == (0, 1000)
    assert (unpaid.status_code, unpaid.json()["code"]) == (405, "invalid_type_or_status")


async def test_every_route_answers_as_lagos_spec_says(
    checked: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """Create, show, list (all and a customer's, filtered), update, void, estimate and
    download, each request and answer checked against Lago's OpenAPI spec."""
    made = await created(checked, invoice)
    path = f"/credit_notes/{made['lago_id']}"
    items = note(invoice, 10)["credit_note"]["items"]
    answers = [
        await checked.get(path),
        await checked.get("/credit_notes", params={"reason": "other", "amount_from": 1}),
        await checked.get("/customers/acme/credit_notes", params={"credit_status": "available"}),
        await checked.put(path, json={"credit_note": {"refund_status": "succeeded"}}),
        await checked.put(f"{path}/void"),
        await checked.post(
            "/credit_notes/estimate",
            json={"credit_note": {"invoice_id": invoice["lago_id"], "items": items}},
        ),
        await checked.post(f"{path}/download"),
    ]

    assert [a.status_code for a in answers] == [200] * len(answers)


async def test_a_refund_of_an_unpaid_invoice_paid_in_full(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """validate_service_spec.rb: "when invoice is not paid", "when paid amount equals the
    total amount" (``valid_invoice_status?``)."""
    invoice["payment_status"] = "pending"

    response = await lago.post("/credit_notes", json=note(invoice, 10, refund_amount_cents=10))

    assert response.json()["error_details"] == {
        "refund_amount_cents": ["cannot_refund_unpaid_invoice"]
    }


async def test_an_offset_above_what_is_due(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """validate_service_spec.rb: "when offset_amount_cents exceeds invoice due amount" (a
    paid invoice owes nothing)."""
    response = await lago.post("/credit_notes", json=note(invoice, 10, offset_amount_cents=10))

    assert response.json()["error_details"] == {
        "offset_amount_cents": ["higher_than_remaining_invoice_amount"]
    }


async def test_credit_refund_and_offset_together(
    lago: httpx.AsyncClient, invoice: dict[str, Any]
) -> None:
    """validate_service_spec.rb: "with combined credit, refund, and offset amounts" (half
    paid: each part within its bound, all three in the total)."""
    invoice.update(payment_status="pending", total_paid_amount_cents=1000)
    body = note(
        invoice, 200, 100, credit_amount_cents=100, refund_amount_cents=100, offset_amount_cents=100
    )

    response = await lago.post("/credit_notes", json=body)

    assert response.status_code == 200, response.text
    made = response.json()["credit_note"]
    assert (made["total_amount_cents"], made["balance_amount_cents"]) == (300, 100)
    assert (made["refund_status"], made["credit_status"]) == ("pending", "available")
