"""Invoice records: creation (with coupons and prepaid credits applied) and their wire form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .clock import iso, new_id
from .outbox import emit
from .state import EmulatorState, Record

_LIST_ONLY_OMITS = ("fees", "credits", "subscriptions", "billing_periods")


def make_fee(invoice: Record, params: dict[str, Any]) -> Record:
    """A fee of ``invoice`` from partial ``params`` (``amount_cents`` at least)."""
    amount = int(params.get("amount_cents", 0))
    currency = invoice["currency"]
    units = str(params.get("units", "1.0"))
    item = {
        "type": "subscription",
        "code": "subscription",
        "name": "Subscription",
        "lago_item_id": new_id(),
        "item_type": "Subscription",
        **(params.get("item") or {}),
    }
    fee = {
        "lago_id": new_id(),
        "lago_invoice_id": invoice["lago_id"],
        "lago_charge_id": None,
        "lago_subscription_id": None,
        "lago_customer_id": invoice["customer"]["lago_id"],
        "external_customer_id": invoice["customer"]["external_id"],
        "external_subscription_id": None,
        "amount_cents": amount,
        "precise_amount": f"{amount / 100:.2f}",
        "amount_currency": currency,
        "taxes_amount_cents": 0,
        "taxes_rate": 0.0,
        "units": units,
        "total_aggregated_units": units,
        "precise_unit_amount": f"{amount / 100:.2f}",
        "total_amount_cents": amount,
        "total_amount_currency": currency,
        "events_count": None,
        "pay_in_advance": False,
        "invoiceable": True,
        "payment_status": "pending",
        "created_at": invoice["created_at"],
        "sub_total_excluding_taxes_amount_cents": amount,
        "sub_total_excluding_taxes_precise_amount_cents": f"{amount:.1f}",
        "applied_taxes": [],
    }
    extra = {k: v for k, v in params.items() if k not in ("item", "amount_cents", "units")}
    return {**fee, **extra, "item": item}


def _blank(state: EmulatorState, customer: Record, currency: str, kind: str, status: str) -> Record:
    now = state.now()
    sequence = state.next_sequence("invoice")
    term = customer.get("net_payment_term") or 0
    return {
        "lago_id": new_id(),
        "billing_entity_code": customer.get("billing_entity_code"),
        "sequential_id": sequence,
        "number": f"EMU-{sequence:06d}",
        "issuing_date": now.date().isoformat(),
        "payment_due_date": (now + timedelta(days=term)).date().isoformat(),
        "payment_overdue": False,
        "net_payment_term": term,
        "invoice_type": kind,
        "status": status,
        "payment_status": "pending",
        "currency": currency,
        "fees_amount_cents": 0,
        "coupons_amount_cents": 0,
        "credit_notes_amount_cents": 0,
        "sub_total_excluding_taxes_amount_cents": 0,
        "taxes_amount_cents": 0,
        "sub_total_including_taxes_amount_cents": 0,
        "prepaid_credit_amount_cents": 0,
        "progressive_billing_credit_amount_cents": 0,
        "total_amount_cents": 0,
        "total_due_amount_cents": 0,
        "total_paid_amount_cents": 0,
        "version_number": 4,
        "self_billed": False,
        "created_at": iso(now),
        "updated_at": iso(now),
        "customer": customer,
        "metadata": [],
        "applied_taxes": [],
        "credits": [],
        "subscriptions": [],
        "billing_periods": [],
        "fees": [],
    }


def recompute(invoice: Record) -> None:
    """Totals from fees, coupons and prepaid credits."""
    fees = sum(int(fee["amount_cents"]) for fee in invoice["fees"])
    after_coupons = max(fees - invoice["coupons_amount_cents"], 0)
    total = max(
        after_coupons
        - invoice["prepaid_credit_amount_cents"]
        - invoice["credit_notes_amount_cents"],
        0,
    )
    invoice.update(
        fees_amount_cents=fees,
        sub_total_excluding_taxes_amount_cents=after_coupons,
        sub_total_including_taxes_amount_cents=after_coupons,
        total_amount_cents=total,
        total_due_amount_cents=0 if invoice["payment_status"] == "succeeded" else total,
    )


def create_invoice(
    state: EmulatorState,
    customer: Record,
    fees: list[dict[str, Any]],
    *,
    currency: str = "USD",
    invoice_type: str = "subscription",
    status: str = "finalized",
) -> Record:
    """Store a new invoice; a finalized one of 0 is paid at once, as Lago does."""
    invoice = _blank(state, customer, currency, invoice_type, status)
    invoice["fees"] = [make_fee(invoice, params) for params in fees]
    recompute(invoice)
    if status == "finalized" and invoice["total_amount_cents"] == 0:
        invoice["payment_status"] = "succeeded"
    state.invoices[invoice["lago_id"]] = invoice
    return invoice


def announce(state: EmulatorState, invoice: Record) -> None:
    """The webhook Lago sends for a new invoice."""
    kind = {"draft": "invoice.drafted"}.get(invoice["status"], "invoice.created")
    if invoice["invoice_type"] == "credit" and invoice["status"] == "finalized":
        kind = "invoice.paid_credit_added"
    emit(state, kind, "invoice", serialize(state, invoice))


def serialize(state: EmulatorState, invoice: Record, listed: bool = False) -> Record:
    """The response object, with the customer as it is now."""
    body = dict(invoice)
    body["customer"] = state.customers.get(invoice["customer"]["external_id"], invoice["customer"])
    if listed:
        for key in _LIST_ONLY_OMITS:
            body.pop(key, None)
    return body


def customer_invoices(state: EmulatorState, external_customer_id: str) -> list[Record]:
    """The customer's invoices, oldest first."""
    return [
        i for i in state.invoices.values() if i["customer"]["external_id"] == external_customer_id
    ]
