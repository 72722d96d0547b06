"""Credit notes on finalized invoices: credited, refunded or offset amounts."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id
from .errors import MethodNotAllowed, NotFound, ValidationFailed, missing
from .http import ok, paginate, read_root, state_of
from .invoices import get_invoice
from .outbox import emit
from .state import EmulatorState, Record

REASONS = (
    "duplicated_charge",
    "product_unsatisfactory",
    "order_change",
    "order_cancellation",
    "fraudulent_charge",
    "other",
)


def _items(invoice: Record, params: dict[str, Any]) -> list[Record]:
    fees = {fee["lago_id"]: fee for fee in invoice["fees"]}
    items = []
    for item in params.get("items") or []:
        fee = fees.get(str(item.get("fee_id")))
        if fee is None:
            raise NotFound("fee")
        amount = int(item.get("amount_cents") or 0)
        if amount > fee["amount_cents"]:
            raise ValidationFailed({"amount_cents": ["higher_than_remaining_fee_amount"]})
        items.append(
            {
                "lago_id": new_id(),
                "amount_cents": amount,
                "amount_currency": invoice["currency"],
                "fee": fee,
            }
        )
    if not items:
        raise missing("items")
    return items


def _amounts(invoice: Record, params: dict[str, Any], total: int) -> tuple[int, int, int]:
    credit, refund, offset = (
        int(params.get(k) or 0)
        for k in ("credit_amount_cents", "refund_amount_cents", "offset_amount_cents")
    )
    if credit + refund + offset != total:
        raise ValidationFailed({"base": ["does_not_match_item_amounts"]})
    if refund > invoice["total_paid_amount_cents"]:
        raise ValidationFailed({"refund_amount_cents": ["higher_than_remaining_invoice_amount"]})
    return credit, refund, offset


def _record(state: EmulatorState, invoice: Record, params: dict[str, Any]) -> Record:
    items = _items(invoice, params)
    total = sum(item["amount_cents"] for item in items)
    credit, refund, offset = _amounts(invoice, params, total)
    sequence = state.next_sequence("credit_note")
    now = state.now()
    return {
        "lago_id": new_id(),
        "sequential_id": sequence,
        "billing_entity_code": "default",
        "number": f"{invoice['number']}-CN{sequence:03d}",
        "lago_invoice_id": invoice["lago_id"],
        "invoice_number": invoice["number"],
        "issuing_date": now.date().isoformat(),
        "credit_status": "available" if credit else None,
        "refund_status": "pending" if refund else None,
        "reason": params.get("reason") if params.get("reason") in REASONS else "other",
        "description": params.get("description"),
        "currency": invoice["currency"],
        "total_amount_cents": total,
        "taxes_amount_cents": 0,
        "taxes_rate": 0.0,
        "sub_total_excluding_taxes_amount_cents": total,
        "balance_amount_cents": credit,
        "credit_amount_cents": credit,
        "refund_amount_cents": refund,
        "offset_amount_cents": offset,
        "coupons_adjustment_amount_cents": 0,
        "created_at": iso(now),
        "updated_at": iso(now),
        "file_url": None,
        "items": items,
        "applied_taxes": [],
        "self_billed": False,
        "customer": invoice["customer"],
    }


def create_credit_note(state: EmulatorState, params: dict[str, Any]) -> Record:
    """A credit note on a finalized invoice; amounts must add up to its items."""
    invoice = get_invoice(state, str(params.get("invoice_id")))
    if invoice["status"] != "finalized":
        raise MethodNotAllowed("invalid_type_or_status")
    note = _record(state, invoice, params)
    state.credit_notes[note["lago_id"]] = note
    emit(state, "credit_note.created", "credit_note", note)
    return note


async def create(request: Request) -> Response:
    """POST /credit_notes."""
    params = await read_root(request, "credit_note")
    return ok({"credit_note": create_credit_note(state_of(request), params)})


async def index(request: Request) -> Response:
    """GET /credit_notes?external_customer_id=."""
    state = state_of(request)
    customer_id = request.query_params.get("external_customer_id")
    found = [
        n
        for n in state.credit_notes.values()
        if customer_id is None or n["customer"]["external_id"] == customer_id
    ]
    return paginate(request, "credit_notes", found)


async def show(request: Request) -> Response:
    """GET /credit_notes/{lago_id}."""
    note = state_of(request).credit_notes.get(request.path_params["lago_id"])
    if note is None:
        raise NotFound("credit_note")
    return ok({"credit_note": note})
