"""Issuing and finalizing invoices: coupons, then prepaid credits, then the webhook."""

from __future__ import annotations

from typing import Any

from .applied_coupons import discount
from .clock import iso
from .invoicing import announce, create_invoice, recompute, serialize
from .outbox import emit
from .state import EmulatorState, Record
from .wallets import consume, settle_paid_credits


def _apply_discounts(state: EmulatorState, invoice: Record) -> None:
    if invoice["invoice_type"] != "subscription":
        return
    recompute(invoice)
    invoice["coupons_amount_cents"] = discount(state, invoice, invoice["fees_amount_cents"])
    recompute(invoice)
    invoice["prepaid_credit_amount_cents"] = consume(state, invoice, invoice["total_amount_cents"])
    recompute(invoice)


def finalize(state: EmulatorState, invoice: Record) -> None:
    """Draft → finalized: discounts applied, issued today, paid at once when nothing is due."""
    _apply_discounts(state, invoice)
    now = state.now()
    invoice.update(status="finalized", issuing_date=now.date().isoformat(), updated_at=iso(now))
    if invoice["total_amount_cents"] == 0:
        invoice["payment_status"] = "succeeded"
    announce(state, invoice)


def issue_invoice(
    state: EmulatorState,
    external_customer_id: str,
    amount_cents: int,
    *,
    currency: str = "USD",
    invoice_type: str = "subscription",
    status: str = "finalized",
    fees: list[dict[str, Any]] | None = None,
) -> Record:
    """Store an invoice as Lago's billing run would, fire its webhook, return its wire form.

    ``fees`` (partial fee objects, ``amount_cents`` at least) default to one fee of
    ``amount_cents``; when given they replace it.
    """
    customer = state.customers.get(external_customer_id)
    if customer is None:
        raise KeyError(f"no customer with external_id {external_customer_id!r}")
    fee_params = fees if fees is not None else [{"amount_cents": amount_cents}]
    invoice = create_invoice(
        state, customer, fee_params, currency=currency, invoice_type=invoice_type, status="draft"
    )
    if status == "finalized":
        finalize(state, invoice)
    else:
        invoice["status"] = status
        announce(state, invoice)
    return serialize(state, invoice)


def set_payment_status(state: EmulatorState, invoice: Record, payment_status: str) -> None:
    """Record a payment outcome; a ``credit`` invoice settles or fails its wallet top-up."""
    if invoice["payment_status"] == payment_status:
        return
    paid = payment_status == "succeeded"
    invoice.update(
        payment_status=payment_status,
        updated_at=iso(state.now()),
        total_paid_amount_cents=invoice["total_amount_cents"] if paid else 0,
        total_due_amount_cents=0 if paid else invoice["total_amount_cents"],
    )
    for fee in invoice["fees"]:
        fee["payment_status"] = payment_status
    settle_paid_credits(state, invoice)
    announce_payment(state, invoice)


def announce_payment(state: EmulatorState, invoice: Record) -> None:
    """``invoice.payment_status_updated``."""
    emit(state, "invoice.payment_status_updated", "invoice", serialize(state, invoice))
