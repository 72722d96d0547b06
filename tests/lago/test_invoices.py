"""Invoices issued by the test, listed with Lago's filters, driven through their lifecycle."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState
from lago.emulator.customers import upsert_customer

pytestmark = pytest.mark.asyncio


@pytest.fixture
def customer(state: EmulatorState) -> None:
    upsert_customer(state, {"external_id": "acme", "currency": "USD"})
    upsert_customer(state, {"external_id": "globex", "currency": "EUR"})


@pytest.mark.usefixtures("customer")
async def test_issued_invoice_is_listed_and_fetched(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    invoice = state.issue_invoice("acme", 1500)

    listed = (await lago.get("/invoices")).json()
    fetched = (await lago.get(f"/invoices/{invoice['lago_id']}")).json()["invoice"]

    assert listed["invoices"][0]["lago_id"] == invoice["lago_id"]
    assert listed["meta"]["total_count"] == 1
    assert fetched["total_amount_cents"] == 1500
    assert fetched["fees"][0]["amount_cents"] == 1500
    assert fetched["customer"]["external_id"] == "acme"
    assert (fetched["status"], fetched["payment_status"]) == ("finalized", "pending")


@pytest.mark.usefixtures("customer")
async def test_invoice_filters(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    state.issue_invoice("acme", 100)
    paid = state.issue_invoice("acme", 200)
    state.issue_invoice("globex", 300, currency="EUR", invoice_type="one_off")
    state.issue_invoice("acme", 400, status="draft")
    await lago.put(
        f"/invoices/{paid['lago_id']}", json={"invoice": {"payment_status": "succeeded"}}
    )

    async def amounts(**params: Any) -> list[int]:
        found = (await lago.get("/invoices", params=params)).json()["invoices"]
        return sorted(i["total_amount_cents"] for i in found)

    assert await amounts(external_customer_id="acme") == [100, 200, 400]
    assert await amounts(status="draft") == [400]
    assert await amounts(**{"statuses[]": ["finalized"]}) == [100, 200, 300]
    assert await amounts(payment_status="succeeded") == [200]
    assert await amounts(currency="EUR") == [300]
    assert await amounts(invoice_type="one_off") == [300]
    assert await amounts(issuing_date_from="2000-01-01", issuing_date_to="2000-12-31") == []
    assert (await lago.get("/invoices", params={"per_page": 2})).json()["meta"]["total_pages"] == 2


@pytest.mark.usefixtures("customer")
async def test_payment_status_is_refused_on_draft_and_voided(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    draft = state.issue_invoice("acme", 100, status="draft")
    voided = state.issue_invoice("acme", 100)
    await lago.post(f"/invoices/{voided['lago_id']}/void")
    body = {"invoice": {"payment_status": "succeeded"}}

    on_draft = await lago.put(f"/invoices/{draft['lago_id']}", json=body)
    on_voided = await lago.put(f"/invoices/{voided['lago_id']}", json=body)

    assert on_draft.status_code == 405
    assert on_draft.json() == {
        "status": 405,
        "error": "Method Not Allowed",
        "code": "payment_status_update_on_draft_invoice",
    }
    assert on_voided.json()["code"] == "update_on_voided_invoice"


@pytest.mark.usefixtures("customer")
async def test_draft_lifecycle_refresh_finalize_download(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    draft = state.issue_invoice("acme", 700, status="draft")
    path = f"/invoices/{draft['lago_id']}"

    refreshed = await lago.put(f"{path}/refresh")
    early_download = await lago.post(f"{path}/download")
    finalized = await lago.put(f"{path}/finalize")
    twice = await lago.put(f"{path}/finalize")
    downloaded = await lago.post(f"{path}/download")

    assert refreshed.json()["invoice"]["status"] == "draft"
    assert early_download.status_code == 404  # download_pdf looks in the finalized scope
    assert finalized.json()["invoice"]["status"] == "finalized"
    assert twice.status_code == 404
    assert downloaded.json()["invoice"]["file_url"].endswith(".pdf")


@pytest.mark.usefixtures("customer")
async def test_void_and_retry_payment_rules(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    invoice = state.issue_invoice("acme", 100)
    path = f"/invoices/{invoice['lago_id']}"

    retried = await lago.post(f"{path}/retry_payment")
    voided = await lago.post(f"{path}/void")
    again = await lago.post(f"{path}/void")
    retry_voided = await lago.post(f"{path}/retry_payment")

    assert retried.status_code == 200
    assert retried.content == b""
    assert voided.json()["invoice"]["status"] == "voided"
    assert again.json()["code"] == "not_voidable"
    assert retry_voided.json()["code"] == "invalid_status"


@pytest.mark.usefixtures("customer")
async def test_finalized_invoice_applies_coupons_then_wallet_credits(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await lago.post(
        "/coupons",
        json={
            "coupon": {
                "name": "Five",
                "code": "five",
                "coupon_type": "fixed_amount",
                "amount_cents": 500,
                "amount_currency": "USD",
                "frequency": "once",
                "expiration": "no_expiration",
            }
        },
    )
    await lago.post(
        "/applied_coupons",
        json={"applied_coupon": {"external_customer_id": "acme", "coupon_code": "five"}},
    )
    await lago.post(
        "/wallets",
        json={
            "wallet": {
                "external_customer_id": "acme",
                "currency": "USD",
                "rate_amount": "1",
                "granted_credits": "3",
            }
        },
    )

    invoice = state.issue_invoice("acme", 1000)

    assert invoice["coupons_amount_cents"] == 500
    assert invoice["prepaid_credit_amount_cents"] == 300
    assert invoice["total_amount_cents"] == 200
    assert next(iter(state.wallets.values()))["balance_cents"] == 0
    assert next(iter(state.applied_coupons.values()))["status"] == "terminated"


@pytest.mark.usefixtures("customer")
async def test_zero_invoice_is_paid_at_once(state: EmulatorState) -> None:
    invoice = state.issue_invoice("acme", 0)

    assert invoice["payment_status"] == "succeeded"


@pytest.mark.usefixtures("customer")
async def test_credit_note_with_refund(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    invoice = state.issue_invoice("acme", 1000)
    fee_id = invoice["fees"][0]["lago_id"]
    await lago.put(
        f"/invoices/{invoice['lago_id']}", json={"invoice": {"payment_status": "succeeded"}}
    )

    def note(refund: int, credit: int) -> dict[str, Any]:
        return {
            "credit_note": {
                "invoice_id": invoice["lago_id"],
                "reason": "other",
                "refund_amount_cents": refund,
                "credit_amount_cents": credit,
                "items": [{"fee_id": fee_id, "amount_cents": 400}],
            }
        }

    created = await lago.post("/credit_notes", json=note(300, 100))
    mismatched = await lago.post("/credit_notes", json=note(300, 300))
    listed = await lago.get("/credit_notes", params={"external_customer_id": "acme"})

    body = created.json()["credit_note"]
    assert body["refund_amount_cents"] == 300
    assert body["refund_status"] == "pending"
    assert body["total_amount_cents"] == 400
    assert mismatched.json()["error_details"] == {"base": ["does_not_match_item_amounts"]}
    assert listed.json()["credit_notes"][0]["lago_id"] == body["lago_id"]
    assert (await lago.get(f"/credit_notes/{body['lago_id']}")).status_code == 200


async def test_issue_invoice_for_unknown_customer_raises(state: EmulatorState) -> None:
    with pytest.raises(KeyError, match="nobody"):
        state.issue_invoice("nobody", 100)
