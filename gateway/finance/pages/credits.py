"""An operator's credit note from the invoice page: a refund to the card or a credit."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.errors import GatewayError
from gateway.finance import credits
from gateway.finance.endpoints import (
    SignedIn,
    base_of,
    check_csrf,
    flash,
    require_operator,
    runtime_of,
)
from gateway.finance.formatting import money
from gateway.integrations.stripe.client import StripeError
from gateway.invoices import service as invoices
from gateway.invoices.money import exponent

router = APIRouter()


def cents_of(text: str, currency: str) -> int | None:
    """``"12.50"`` USD → 1250; None for anything that is not such an amount."""
    try:
        amount = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        return None
    scaled = amount.scaleb(exponent(currency))
    if not amount.is_finite() or scaled != scaled.to_integral_value():
        return None
    return int(scaled)


@router.post("/invoices/{lago_id}/credit-notes", include_in_schema=False)
async def create_credit_note(lago_id: str, request: Request, viewer: SignedIn) -> Response:
    form = await check_csrf(request)
    require_operator(viewer)
    runtime, back = runtime_of(request), f"{base_of(request)}/invoices/{lago_id}"
    invoice = await invoices.fetch(runtime.lago, invoices.check_id(lago_id))
    currency = str(invoice.get("currency") or "USD")
    cents = cents_of(form.get("amount", ""), currency)
    if cents is None:
        flash(request, "No credit note: the amount is not a number such as 12.50.", "error")
        return RedirectResponse(back, status_code=303)
    kind, reason = form.get("kind", ""), form.get("reason", "")
    try:
        note = await credits.issue(runtime, invoice, kind, cents, reason, viewer.actor)
    except (GatewayError, StripeError) as exc:
        flash(request, f"No credit note: {getattr(exc, 'message', None) or exc}", "error")
        return RedirectResponse(back, status_code=303)
    done = "refunded to the card" if kind == "refund" else "credited to the customer"
    total = note.get("total_amount_cents")
    flash(request, f"Credit note {note.get('number', '')}: {money(total, currency)} {done}.")
    return RedirectResponse(back, status_code=303)
