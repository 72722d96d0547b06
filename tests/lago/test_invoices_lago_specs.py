"""Lago's spec/requests/api/v1/invoices_controller_spec.rb, ported to the emulator.

Each test names the ``describe``/``context``/``it`` it ports. Not ported: one-off invoice
creation, ``DELETE``, XML downloads, ``retry``, ``payment_url``, Salesforce sync, previews,
billing entities and integration customers, which the emulator does not have.
"""

from __future__ import annotations

import httpx
import pytest

from lago.emulator import EmulatorState
from lago.emulator.customers import upsert_customer

pytestmark = pytest.mark.asyncio

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def customers(state: EmulatorState) -> None:
    upsert_customer(state, {"external_id": "acme", "currency": "EUR"})
    upsert_customer(state, {"external_id": "globex", "currency": "EUR"})


def invoice(
    state: EmulatorState, status: str = "finalized", invoice_type: str = "subscription"
) -> str:
    """A 10.00 EUR invoice of acme in ``status``; its lago_id."""
    issued = state.issue_invoice("acme", 1000, currency="EUR", invoice_type=invoice_type)
    state.invoices[issued["lago_id"]]["status"] = status
    return str(issued["lago_id"])


async def test_update_sets_the_payment_status(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """invoices_controller_spec.rb: PUT /api/v1/invoices/:id, it "updates an invoice"."""
    lago_id = invoice(state)

    response = await lago.put(
        f"/invoices/{lago_id}", json={"invoice": {"payment_status": "succeeded"}}
    )

    assert response.status_code == 200
    assert response.json()["invoice"]["lago_id"] == lago_id
    assert response.json()["invoice"]["payment_status"] == "succeeded"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("PUT", ""),
        ("GET", ""),
        ("PUT", "/refresh"),
        ("PUT", "/finalize"),
        ("POST", "/void"),
        ("POST", "/lose_dispute"),
        ("POST", "/download"),
        ("POST", "/retry_payment"),
    ],
)
async def test_an_unknown_invoice_is_404_invoice_not_found(
    lago: httpx.AsyncClient, method: str, suffix: str
) -> None:
    """invoices_controller_spec.rb: every action, context "when invoice does not exist",
    it "returns a not found error"."""
    body = {"invoice": {"payment_status": "succeeded"}} if method == "PUT" else None

    response = await lago.request(method, f"/invoices/{UNKNOWN}{suffix}", json=body)

    assert response.status_code == 404
    assert response.json() == {"status": 404, "error": "Not Found", "code": "invoice_not_found"}


async def test_update_of_a_voided_invoice_is_405_and_changes_nothing(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """invoices_controller_spec.rb: PUT, context "when invoice is voided", it "returns a
    method not allowed error and does not update the invoice"."""
    lago_id = invoice(state, "voided")

    response = await lago.put(
        f"/invoices/{lago_id}", json={"invoice": {"payment_status": "succeeded"}}
    )

    assert response.status_code == 405
    assert response.json()["code"] == "update_on_voided_invoice"
    assert state.invoices[lago_id]["payment_status"] == "pending"


async def test_update_of_a_voided_invoice_is_405_before_the_status_is_checked(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """InvoicesController#update refuses a voided invoice before Invoices::UpdateService
    looks at the payment status."""
    lago_id = invoice(state, "voided")

    response = await lago.put(f"/invoices/{lago_id}", json={"invoice": {"payment_status": "x"}})

    assert response.json()["code"] == "update_on_voided_invoice"


async def test_update_with_metadata(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """invoices_controller_spec.rb: PUT, context "with metadata", it "returns a success"."""
    lago_id = invoice(state)

    response = await lago.put(
        f"/invoices/{lago_id}", json={"invoice": {"metadata": [{"key": "Hello", "value": "Hi"}]}}
    )

    assert response.status_code == 200
    metadata = response.json()["invoice"]["metadata"]
    assert (metadata[0]["key"], metadata[0]["value"]) == ("Hello", "Hi")


async def test_metadata_by_id_is_updated_and_unnamed_entries_removed(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """Invoices::Metadata::UpdateService: an item with a known id updates it; entries not
    named are destroyed."""
    lago_id = invoice(state)
    path = f"/invoices/{lago_id}"
    first = await lago.put(
        path, json={"invoice": {"metadata": [{"key": "a", "value": "1"}, {"key": "b"}]}}
    )
    kept = first.json()["invoice"]["metadata"][0]

    second = await lago.put(
        path, json={"invoice": {"metadata": [{"id": kept["lago_id"], "value": "2"}]}}
    )

    assert [(m["lago_id"], m["key"], m["value"]) for m in second.json()["invoice"]["metadata"]] == [
        (kept["lago_id"], "a", "2")
    ]


async def test_metadata_on_a_draft_is_405(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """Invoices::UpdateService: ``metadata_on_draft_invoice``."""
    lago_id = invoice(state, "draft")

    response = await lago.put(
        f"/invoices/{lago_id}", json={"invoice": {"metadata": [{"key": "a", "value": "b"}]}}
    )

    assert response.status_code == 405
    assert response.json()["code"] == "metadata_on_draft_invoice"


async def test_more_than_five_metadata_is_invalid_count(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """Invoices::UpdateService#valid_metadata_count? (COUNT_PER_INVOICE = 5)."""
    lago_id = invoice(state)
    items = [{"key": f"k{n}", "value": "v"} for n in range(6)]

    response = await lago.put(f"/invoices/{lago_id}", json={"invoice": {"metadata": items}})

    assert response.status_code == 422
    assert response.json()["error_details"] == {"metadata": ["invalid_count"]}


async def test_an_unknown_payment_status_is_value_is_invalid(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """Invoices::UpdateService#valid_payment_status? (Invoice::PAYMENT_STATUS)."""
    lago_id = invoice(state)

    response = await lago.put(f"/invoices/{lago_id}", json={"invoice": {"payment_status": "paid"}})

    assert response.status_code == 422
    assert response.json()["error_details"] == {"payment_status": ["value_is_invalid"]}


async def test_a_draft_takes_its_own_payment_status_but_no_other(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """Invoices::UpdateService: a draft is refused only when the status would change."""
    lago_id = invoice(state, "draft")
    path = f"/invoices/{lago_id}"

    same = await lago.put(path, json={"invoice": {"payment_status": "pending"}})
    other = await lago.put(path, json={"invoice": {"payment_status": "succeeded"}})

    assert same.status_code == 200
    assert other.status_code == 405
    assert other.json()["code"] == "payment_status_update_on_draft_invoice"


async def test_show_returns_the_invoice(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """invoices_controller_spec.rb: GET /api/v1/invoices/:id, it "returns an invoice"."""
    lago_id = invoice(state)

    response = await lago.get(f"/invoices/{lago_id}")

    assert response.status_code == 200
    body = response.json()["invoice"]
    assert (body["lago_id"], body["status"], body["payment_status"]) == (
        lago_id,
        "finalized",
        "pending",
    )
    assert body["customer"]["external_id"] == "acme"
    assert (body["subscriptions"], body["credits"]) == ([], [])


@pytest.mark.parametrize("status", ["generating", "open", "closed"])
async def test_an_invisible_invoice_is_404(
    lago: httpx.AsyncClient, state: EmulatorState, status: str
) -> None:
    """InvoicesController looks invoices up in ``visible`` (Invoice::VISIBLE_STATUS)."""
    lago_id = invoice(state, status)

    response = await lago.get(f"/invoices/{lago_id}")

    assert response.status_code == 404


@pytest.mark.parametrize("param", ["external_customer_id", "customer_external_id"])
async def test_index_filters_by_customer(
    lago: httpx.AsyncClient, state: EmulatorState, param: str
) -> None:
    """invoices_controller_spec.rb: GET /api/v1/invoices, context "with #{param_name}
    params", it "returns invoices of the customer"."""
    matching = invoice(state)
    state.issue_invoice("globex", 500, currency="EUR")

    response = await lago.get("/invoices", params={param: "acme"})

    assert response.status_code == 200
    assert [i["lago_id"] for i in response.json()["invoices"]] == [matching]


async def test_refresh_of_a_draft_updates_it(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """invoices_controller_spec.rb: PUT /refresh, context "when invoice is draft", it
    "updates the invoice" and it "returns the invoice"."""
    lago_id = invoice(state, "draft")
    state.invoices[lago_id]["updated_at"] = "2000-01-01T00:00:00Z"

    response = await lago.put(f"/invoices/{lago_id}/refresh")

    assert response.status_code == 200
    assert response.json()["invoice"]["lago_id"] == lago_id
    assert state.invoices[lago_id]["updated_at"] != "2000-01-01T00:00:00Z"


async def test_refresh_of_a_finalized_invoice_changes_nothing(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """invoices_controller_spec.rb: PUT /refresh, context "when invoice is finalized", it
    "does not update the invoice" and it "returns the invoice"."""
    lago_id = invoice(state)
    before = dict(state.invoices[lago_id])

    response = await lago.put(f"/invoices/{lago_id}/refresh")

    assert response.status_code == 200
    assert response.json()["invoice"]["lago_id"] == lago_id
    assert state.invoices[lago_id] == before


@pytest.mark.parametrize("suffix", ["/refresh", "/finalize"])
async def test_refresh_and_finalize_are_for_subscription_invoices(
    lago: httpx.AsyncClient, state: EmulatorState, suffix: str
) -> None:
    """Invoices::RefreshDraftService and RefreshDraftAndFinalizeService:
    ``forbidden_failure!`` unless ``invoice.subscription?``."""
    lago_id = invoice(state, "draft", invoice_type="one_off")

    response = await lago.put(f"/invoices/{lago_id}{suffix}")

    assert response.status_code == 403
    assert response.json() == {"status": 403, "error": "Forbidden", "code": "feature_unavailable"}


async def test_finalize_of_a_finalized_invoice_is_404(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """invoices_controller_spec.rb: PUT /finalize, context "when invoice is not draft", it
    "returns a not found error"."""
    response = await lago.put(f"/invoices/{invoice(state)}/finalize")

    assert response.status_code == 404
    assert response.json()["code"] == "invoice_not_found"


async def test_finalize_of_a_draft(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """invoices_controller_spec.rb: PUT /finalize, context "when invoice is draft", it
    "finalizes the invoice" and it "returns the invoice"."""
    lago_id = invoice(state, "draft")

    response = await lago.put(f"/invoices/{lago_id}/finalize")

    assert response.status_code == 200
    assert response.json()["invoice"]["lago_id"] == lago_id
    assert state.invoices[lago_id]["status"] == "finalized"


@pytest.mark.parametrize("status", ["draft", "voided"])
async def test_void_of_a_draft_or_voided_invoice_is_405(
    lago: httpx.AsyncClient, state: EmulatorState, status: str
) -> None:
    """invoices_controller_spec.rb: POST /void, contexts "when invoice is draft" and "when
    invoice is voided", it "returns a method not allowed error"."""
    response = await lago.post(f"/invoices/{invoice(state, status)}/void")

    assert response.status_code == 405
    assert response.json()["code"] == "not_voidable"


@pytest.mark.parametrize("payment_status", ["succeeded", "pending", "failed"])
async def test_void_of_a_finalized_invoice(
    lago: httpx.AsyncClient, state: EmulatorState, payment_status: str
) -> None:
    """invoices_controller_spec.rb: POST /void, context "when invoice is finalized" (the
    payment status succeeded or not), it "voids the invoice" and "returns the invoice"."""
    lago_id = invoice(state)
    state.invoices[lago_id]["payment_status"] = payment_status

    response = await lago.post(f"/invoices/{lago_id}/void")

    assert response.status_code == 200
    body = response.json()["invoice"]
    assert (body["lago_id"], body["status"]) == (lago_id, "voided")
    assert body["voided_at"]


@pytest.mark.parametrize("status", ["finalized", "voided"])
async def test_lose_dispute_marks_the_dispute_lost(
    lago: httpx.AsyncClient, state: EmulatorState, status: str
) -> None:
    """invoices_controller_spec.rb: POST /lose_dispute, contexts "when invoice is finalized"
    and "when invoice is voided", it "marks the dispute as lost" and "returns the invoice"."""
    lago_id = invoice(state, status)

    response = await lago.post(f"/invoices/{lago_id}/lose_dispute")

    assert response.status_code == 200
    assert response.json()["invoice"]["lago_id"] == lago_id
    assert response.json()["invoice"]["payment_dispute_lost_at"]


async def test_lose_dispute_keeps_the_first_date(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """Invoice#mark_as_dispute_lost!: ``payment_dispute_lost_at ||= timestamp``."""
    lago_id = invoice(state)
    first = await lago.post(f"/invoices/{lago_id}/lose_dispute")

    again = await lago.post(f"/invoices/{lago_id}/lose_dispute")

    lost_at = first.json()["invoice"]["payment_dispute_lost_at"]
    assert again.json()["invoice"]["payment_dispute_lost_at"] == lost_at


async def test_lose_dispute_of_a_draft_is_405(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """invoices_controller_spec.rb: POST /lose_dispute, context "when invoice is draft", it
    "returns method not allowed error" (``not_disputable``)."""
    response = await lago.post(f"/invoices/{invoice(state, 'draft')}/lose_dispute")

    assert response.status_code == 405
    assert response.json()["code"] == "not_disputable"


async def test_lose_dispute_of_a_generating_invoice_is_404(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """invoices_controller_spec.rb: POST /lose_dispute, context "when invoice is
    generating", it "returns not found error"."""
    response = await lago.post(f"/invoices/{invoice(state, 'generating')}/lose_dispute")

    assert response.status_code == 404


async def test_download_of_a_finalized_invoice(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """invoices_controller_spec.rb: POST /download, context "when generated pdf", it "does
    not regenerate" (the invoice comes back with its file)."""
    lago_id = invoice(state)

    response = await lago.post(f"/invoices/{lago_id}/download")

    assert response.status_code == 200
    assert response.json()["invoice"]["file_url"].endswith(f"{lago_id}.pdf")


@pytest.mark.parametrize("status", ["draft", "voided"])
async def test_download_of_an_invoice_not_finalized_is_404(
    lago: httpx.AsyncClient, state: EmulatorState, status: str
) -> None:
    """invoices_controller_spec.rb: POST /download, context "when invoice is draft", it
    "returns not found" (download_pdf looks in ``finalized``)."""
    response = await lago.post(f"/invoices/{invoice(state, status)}/download")

    assert response.status_code == 404
    assert response.json()["code"] == "invoice_not_found"


async def test_retry_payment_is_an_empty_200(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """invoices_controller_spec.rb: POST /retry_payment, it "calls retry service"."""
    response = await lago.post(f"/invoices/{invoice(state)}/retry_payment")

    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize(("status", "payment"), [("draft", "pending"), ("finalized", "succeeded")])
async def test_retry_payment_of_a_draft_or_paid_invoice_is_invalid_status(
    lago: httpx.AsyncClient, state: EmulatorState, status: str, payment: str
) -> None:
    """Invoices::Payments::RetryService: drafts, voided and paid invoices are 405
    ``invalid_status``."""
    lago_id = invoice(state, status)
    state.invoices[lago_id]["payment_status"] = payment

    response = await lago.post(f"/invoices/{lago_id}/retry_payment")

    assert response.status_code == 405
    assert response.json()["code"] == "invalid_status"
