"""Lago's ``invoices.payment_url`` answered with the gateway's own Stripe payment link.

Lago asks its payment provider for a checkout URL
(``Invoices::Payments::GeneratePaymentUrlService``); here the gateway collects, so the URL is
the invoice's Stripe Checkout link, the same one ``POST /gateway/invoices/{id}/payment-link``
opens (one open link per invoice, audited as ``collection.payment_link`` when opened). The
answer keeps Lago's shape (``invoice_payment_details``) and Lago's refusal codes.
"""

from __future__ import annotations

from typing import Any

from gateway.billing.passthrough import Write, refuse
from gateway.collection import checkout, service, states
from gateway.errors import Conflict, ValidationFailed
from gateway.invoices import service as invoices
from gateway.runtime import Runtime

ACTION = "invoices.payment_url"
# Lago's GeneratePaymentUrlService codes for the gateway's own refusals.
NOT_PAYABLE = ("invoice_not_payable", "invoice_already_paid")


def stripe_missing() -> ValidationFailed:
    """Lago's ``missing_payment_provider``, saying which setting is missing."""
    return ValidationFailed(
        code="stripe_not_configured",
        details={
            "base": ["missing_payment_provider"],
            "message": "the gateway collects through Stripe: set GATEWAY_STRIPE_SECRET_KEY",
        },
    )


def not_payable() -> ValidationFailed:
    """Lago's refusal of a draft, voided or paid invoice."""
    return ValidationFailed(details={"base": ["invalid_invoice_status_or_payment_status"]})


async def invoice_payment_details(runtime: Runtime, lago_id: str, *, actor: str) -> dict[str, Any]:
    """``{"invoice_payment_details": {...}}`` with the invoice's Stripe payment link; Lago's
    order of checks: the invoice (404), its status, then the provider (Stripe)."""
    change = Write(actor, ACTION, lago_id, upstream=None)
    invoice = await invoices.fetch(runtime.lago, lago_id)
    if not service.collectable(invoice) or states.amount_due(invoice) == 0:
        raise await refuse(runtime.database, change, not_payable())
    if runtime.stripe is None:
        raise await refuse(runtime.database, change, stripe_missing())
    try:
        row = await checkout.open_link(runtime, lago_id, actor=actor)
    except Conflict as exc:
        if exc.code not in NOT_PAYABLE:
            raise
        raise await refuse(runtime.database, change, not_payable()) from exc
    customer = invoice.get("customer") or {}
    details = {
        "lago_customer_id": customer.get("lago_id"),
        "external_customer_id": customer.get("external_id"),
        "payment_provider": "stripe",
        "lago_invoice_id": lago_id,
        "payment_url": row.payment_link,
    }
    return {"invoice_payment_details": details}
