"""``lago-python-client`` drives every credit note call through the gateway, audited."""

from __future__ import annotations

from typing import Any

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import (
    CreditNote,
    CreditNoteEstimate,
    CreditNoteUpdate,
    Item,
    Items,
)

from lago.emulator.customers import upsert_customer
from tests.billing.support import audit_rows, outcomes
from tests.conftest import Gateway
from tests.support.served import call, served

__all__ = ["served"]


def paid_invoice(gateway: Gateway, customer: str = "acme") -> dict[str, Any]:
    """A finalized, paid 20.00 USD invoice of two fees (10.00 each)."""
    upsert_customer(gateway.emulator, {"external_id": customer, "currency": "USD"})
    issued = gateway.emulator.issue_invoice(
        customer, 0, fees=[{"amount_cents": 1000}, {"amount_cents": 1000}]
    )
    stored = gateway.emulator.invoices[issued["lago_id"]]
    stored.update(payment_status="succeeded", total_paid_amount_cents=2000)
    return stored


def items(invoice: dict[str, Any], *amounts: int) -> Items:
    """One item of each amount, on the invoice's fees in order."""
    fees = invoice["fees"]
    return Items(
        __root__=[
            Item(fee_id=fee["lago_id"], amount_cents=amount)
            for fee, amount in zip(fees, amounts, strict=False)
        ]
    )


async def test_the_sdk_drives_every_credit_note_call_through_the_gateway(
    gateway: Gateway, served: str
) -> None:
    invoice = paid_invoice(gateway)
    client = Client(api_key=await gateway.key("billing:read", "billing:write"), api_url=served)

    estimate = await call(
        client.credit_notes.estimate,
        CreditNoteEstimate(invoice_id=invoice["lago_id"], items=items(invoice, 500, 300)),
    )
    assert (estimate.max_creditable_amount_cents, estimate.max_refundable_amount_cents) == (
        800,
        800,
    )
    made = await call(
        client.credit_notes.create,
        CreditNote(
            invoice_id=invoice["lago_id"],
            reason="duplicated_charge",
            credit_amount_cents=500,
            refund_amount_cents=300,
            items=items(invoice, 500, 300),
        ),
    )
    assert made is not None and made.lago_id in gateway.emulator.credit_notes
    assert (made.total_amount_cents, made.refund_status) == (800, "pending")

    found = await call(client.credit_notes.find, made.lago_id)
    assert found.credit_status == "available" and found.customer.external_id == "acme"
    listed = await call(client.credit_notes.find_all, {"external_customer_id": "acme"})
    assert [n.lago_id for n in listed["credit_notes"]] == [made.lago_id]
    assert listed["meta"]["total_count"] == 1
    filtered = await call(client.credit_notes.find_all, {"credit_status": "voided"})
    assert filtered["credit_notes"] == []
    # lago-python-client 1.55's child lists send no API key (FindAllChildrenCommandMixin):
    # refused as Lago refuses it; the same path with the key lists the customer's notes.
    with pytest.raises(LagoApiError) as keyless:
        await call(client.customer_credit_notes.find_all, "acme")
    assert keyless.value.status_code == 401
    mine = await gateway.client.get(
        "/api/v1/customers/acme/credit_notes", headers={"Authorization": f"Bearer {client.api_key}"}
    )
    assert [n["lago_id"] for n in mine.json()["credit_notes"]] == [made.lago_id]

    updated = await call(
        client.credit_notes.update, CreditNoteUpdate(refund_status="succeeded"), made.lago_id
    )
    assert updated.refund_status == "succeeded"
    downloaded = await call(client.credit_notes.download, made.lago_id)
    assert downloaded is not None and downloaded.file_url
    voided = await call(client.credit_notes.void, made.lago_id)
    assert (voided.credit_status, voided.balance_amount_cents) == ("voided", 0)

    rows = await audit_rows(gateway)
    assert outcomes(rows) == [
        ("credit_notes.create", "success", "lago", 200),
        ("credit_notes.update", "success", "lago", 200),
        ("credit_notes.download", "success", "lago", 200),
        ("credit_notes.void", "success", "lago", 200),
    ]
    assert rows[0].target == invoice["lago_id"]
    assert rows[0].detail == {
        "credit_amount_cents": 500,
        "refund_amount_cents": 300,
        "reason": "duplicated_charge",
    }
    assert [r.target for r in rows[1:]] == [made.lago_id] * 3
    assert rows[1].detail == {"refund_status": "succeeded"}


async def test_lagos_refusals_reach_the_sdk_in_lagos_shape_and_are_audited(
    gateway: Gateway, served: str
) -> None:
    invoice = paid_invoice(gateway)
    client = Client(api_key=await gateway.key("billing:read", "billing:write"), api_url=served)
    made = await call(
        client.credit_notes.create,
        CreditNote(invoice_id=invoice["lago_id"], refund_amount_cents=5, items=items(invoice, 5)),
    )
    assert made is not None

    with pytest.raises(LagoApiError) as too_much:
        await call(
            client.credit_notes.create,
            CreditNote(
                invoice_id=invoice["lago_id"],
                credit_amount_cents=5000,
                items=items(invoice, 5000),
            ),
        )
    with pytest.raises(LagoApiError) as nothing_to_void:
        await call(client.credit_notes.void, made.lago_id)
    with pytest.raises(LagoApiError) as unknown:
        await call(client.credit_notes.find, "00000000-0000-4000-8000-000000000000")

    assert too_much.value.status_code == 422
    assert too_much.value.response["error_details"] == {
        "amount_cents": ["higher_than_remaining_fee_amount"]
    }
    assert (nothing_to_void.value.status_code, nothing_to_void.value.response["code"]) == (
        405,
        "no_voidable_amount",
    )
    assert (unknown.value.status_code, unknown.value.response["code"]) == (
        404,
        "credit_note_not_found",
    )
    assert outcomes(await audit_rows(gateway)) == [
        ("credit_notes.create", "success", "lago", 200),
        ("credit_notes.create", "rejected", "lago", 422),
        ("credit_notes.void", "rejected", "lago", 405),
    ]


async def test_bodies_are_checked_before_lago_naming_the_field(gateway: Gateway) -> None:
    invoice = paid_invoice(gateway)
    headers = await gateway.headers("billing:write")
    fee = invoice["fees"][0]["lago_id"]
    bodies = {
        "items": {"invoice_id": invoice["lago_id"], "credit_amount_cents": 10},
        "credit_amount_cents": {
            "invoice_id": invoice["lago_id"],
            "credit_amount_cents": -1,
            "items": [{"fee_id": fee, "amount_cents": 10}],
        },
        "reason": {
            "invoice_id": invoice["lago_id"],
            "reason": "because",
            "items": [{"fee_id": fee, "amount_cents": 10}],
        },
        "items.0.fee_id": {"invoice_id": invoice["lago_id"], "items": [{"amount_cents": 1}]},
    }

    for field, body in bodies.items():
        response = await gateway.client.post(
            "/api/v1/credit_notes", json={"credit_note": body}, headers=headers
        )
        assert response.status_code == 422, response.text
        assert field in response.json()["error_details"], response.text
    status = await gateway.client.put(
        f"/api/v1/credit_notes/{invoice['lago_id']}",
        json={"credit_note": {"refund_status": "refunded"}},
        headers=headers,
    )
    assert status.json()["error_details"] == {"refund_status": ["value_is_invalid"]}

    assert gateway.emulator.credit_notes == {}
    rows = await audit_rows(gateway)
    assert {(r.action, r.outcome, r.upstream, r.status) for r in rows} == {
        ("credit_notes.create", "rejected", None, 422),
        ("credit_notes.update", "rejected", None, 422),
    }
    assert len(rows) == 5


async def test_reads_need_billing_read_and_writes_billing_write(gateway: Gateway) -> None:
    invoice = paid_invoice(gateway)
    reader = await gateway.headers("billing:read")
    writer = await gateway.headers("billing:write")
    body = {
        "credit_note": {
            "invoice_id": invoice["lago_id"],
            "credit_amount_cents": 10,
            "items": [{"fee_id": invoice["fees"][0]["lago_id"], "amount_cents": 10}],
        }
    }
    some_id = "00000000-0000-4000-8000-000000000000"
    writes = [
        ("POST", "/api/v1/credit_notes", body),
        ("POST", "/api/v1/credit_notes/estimate", body),
        ("PUT", f"/api/v1/credit_notes/{some_id}", {"credit_note": {"refund_status": "failed"}}),
        ("PUT", f"/api/v1/credit_notes/{some_id}/void", None),
    ]
    reads = [
        ("GET", "/api/v1/credit_notes", None),
        ("GET", f"/api/v1/credit_notes/{some_id}", None),
        ("GET", "/api/v1/customers/acme/credit_notes", None),
        ("POST", f"/api/v1/credit_notes/{some_id}/download", None),
    ]

    for method, path, json in writes:
        answer = await gateway.client.request(method, path, json=json, headers=reader)
        assert answer.status_code == 403, (method, path, answer.text)
    for method, path, json in reads:
        answer = await gateway.client.request(method, path, json=json, headers=writer)
        assert answer.status_code == 403, (method, path, answer.text)
    unauthenticated = await gateway.client.get("/api/v1/credit_notes")
    assert unauthenticated.status_code == 401
    assert gateway.emulator.credit_notes == {}
    assert await audit_rows(gateway) == []
