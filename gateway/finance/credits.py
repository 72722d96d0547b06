"""Credit notes on the finance pages: an invoice's notes, and one made by an operator.

An operator asks for an amount (before taxes) to refund to the card or to credit to the
customer. It is spread over the invoice's fees in order, each up to what earlier credit
notes left of it (Lago's ``Fee#creditable_amount_cents``; Lago shows no such field, so it is
read off the invoice's credit notes); Lago's estimate then gives the taxes and how much may
be refunded or credited, and the credit note is made through the gateway's credit note
service, which audits it, refunds it on Stripe once, and takes a token pack's tokens back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.credit_notes.service import CreditNotes
from gateway.errors import UpstreamUnavailable, ValidationFailed
from gateway.integrations.lago.client import LagoClient, LagoError
from gateway.runtime import Runtime

KINDS = {"refund": "Refund to the card", "credit": "Credit for the next invoices"}
REASONS = (
    "duplicated_charge",
    "product_unsatisfactory",
    "order_change",
    "order_cancellation",
    "fraudulent_charge",
    "other",
)


@dataclass(frozen=True)
class Notes:
    """An invoice's credit notes, or None when Lago did not answer."""

    items: list[dict[str, Any]] | None


async def of_invoice(lago: LagoClient, invoice: dict[str, Any]) -> Notes:
    """Every credit note of ``invoice`` (Lago's ``invoice_number`` filter), newest first."""
    number = str(invoice.get("number") or "")
    params = [("invoice_number", number), ("per_page", "100")]
    try:
        answer = await lago.call("GET", "/credit_notes", params=params)
    except LagoError:
        return Notes(None)
    listed = answer.get("credit_notes") or []
    return Notes([n for n in listed if n.get("lago_invoice_id") == invoice["lago_id"]])


def remaining_by_fee(invoice: dict[str, Any], notes: list[dict[str, Any]]) -> dict[str, int]:
    """What each fee of ``invoice`` can still be credited, in the invoice's fee order."""
    taken: dict[str, int] = {}
    for note in notes:
        for item in note.get("items") or []:
            fee_id = str((item.get("fee") or {}).get("lago_id") or item.get("lago_fee_id") or "")
            taken[fee_id] = taken.get(fee_id, 0) + int(item.get("amount_cents") or 0)
    left = {}
    for fee in invoice.get("fees") or []:
        fee_id = str(fee["lago_id"])
        left[fee_id] = max(int(fee.get("amount_cents") or 0) - taken.get(fee_id, 0), 0)
    return left


def allocate(remaining: dict[str, int], cents: int) -> list[dict[str, Any]]:
    """Items taking ``cents`` from the fees in order; 422 when they cannot hold it."""
    left, items = cents, []
    for fee_id, room in remaining.items():
        take = min(room, left)
        if take > 0:
            items.append({"fee_id": fee_id, "amount_cents": take})
            left -= take
    if cents <= 0 or left > 0:
        most = sum(remaining.values())
        raise ValidationFailed(
            f"the amount must be more than 0 and at most {most} cents before taxes",
            details={"amount": ["out_of_range"]},
        )
    return items


async def issue(
    runtime: Runtime, invoice: dict[str, Any], kind: str, cents: int, reason: str, actor: str
) -> dict[str, Any]:
    """Make the credit note (audited, refunded on Stripe when ``kind`` is ``refund``)."""
    if kind not in KINDS or reason not in REASONS:
        raise ValidationFailed("choose a kind and a reason", details={"kind": ["invalid"]})
    notes = (await of_invoice(runtime.lago, invoice)).items
    if notes is None:
        raise UpstreamUnavailable("Lago did not answer; try again shortly")
    items = allocate(remaining_by_fee(invoice, notes), cents)
    service = CreditNotes(runtime)
    estimate = await service.estimate({"invoice_id": invoice["lago_id"], "items": items})
    figures = estimate.get("estimated_credit_note") or {}
    total = int(figures.get("sub_total_excluding_taxes_amount_cents") or 0) + int(
        figures.get("taxes_amount_cents") or 0
    )
    most = int(figures.get(f"max_{kind}able_amount_cents") or 0)  # refundable, creditable
    if total > most:
        raise ValidationFailed(
            f"at most {most} cents can be {'refunded' if kind == 'refund' else 'credited'} here",
            details={"amount": ["out_of_range"]},
        )
    params = {
        "invoice_id": invoice["lago_id"],
        "reason": reason,
        "items": items,
        f"{kind}_amount_cents": total,
    }
    answer = await service.create(params, actor)
    return dict(answer.get("credit_note") or {})
