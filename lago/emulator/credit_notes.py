"""Credit notes on finalized invoices: credited, refunded or offset amounts."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .clock import iso, new_id
from .errors import MethodNotAllowed, NotFound, ValidationFailed, invalid
from .http import ok, paginate, read_root, state_of
from .invoices import get_invoice
from .outbox import emit
from .state import EmulatorState, Record

REFUND_STATUSES = ("pending", "succeeded", "failed")  # CreditNote::REFUND_STATUS
REASONS = (
    "duplicated_charge",
    "product_unsatisfactory",
    "order_change",
    "order_cancellation",
    "fraudulent_charge",
    "other",
)


def _credited(state: EmulatorState, fee_id: str) -> int:
    return sum(
        item["amount_cents"]
        for note in state.credit_notes.values()
        for item in note["items"]
        if item["fee"]["lago_id"] == fee_id
    )


def _items(state: EmulatorState, invoice: Record, params: dict[str, Any]) -> list[Record]:
    """CreditNotes::CreateService#create_items and ValidateItemService: items must be a list,
    each of a fee of the invoice (404 ``fee_not_found``) and within what is left of it."""
    raw = params.get("items")
    if not isinstance(raw, list):
        raise ValidationFailed({"items": ["must_be_an_array"]})
    fees = {fee["lago_id"]: fee for fee in invoice["fees"]}
    items = []
    for item in raw:
        fee = fees.get(str(item.get("fee_id"))) if isinstance(item, dict) else None
        if fee is None:
            raise NotFound("fee")
        amount = int(item.get("amount_cents") or 0)
        errors = []
        if amount < 0:
            errors.append("invalid_value")
        if amount > fee["amount_cents"] - _credited(state, fee["lago_id"]):
            errors.append("higher_than_remaining_fee_amount")
        if errors:
            raise ValidationFailed({"amount_cents": errors})
        items.append(
            {
                "lago_id": new_id(),
                "amount_cents": amount,
                "amount_currency": invoice["currency"],
                "fee": fee,
            }
        )
    return items


def _earlier(state: EmulatorState, invoice: Record, key: str) -> int:
    return sum(
        n[key] for n in state.credit_notes.values() if n["lago_invoice_id"] == invoice["lago_id"]
    )


def _amounts(
    state: EmulatorState, invoice: Record, params: dict[str, Any], items_total: int
) -> tuple[int, int, int]:
    """CreditNotes::ValidateService: every failed check is reported, in its order."""
    credit, refund, offset = (
        int(params.get(k) or 0)
        for k in ("credit_amount_cents", "refund_amount_cents", "offset_amount_cents")
    )
    total = credit + refund + offset
    credited = _earlier(state, invoice, "credit_amount_cents")
    offsetted = _earlier(state, invoice, "offset_amount_cents")
    creditable = invoice["fees_amount_cents"] - credited - offsetted
    paid = invoice["total_paid_amount_cents"]
    errors: dict[str, list[str]] = {}
    if abs(total - items_total) > 1:
        errors.setdefault("base", []).append("does_not_match_item_amounts")
    refunded = _earlier(state, invoice, "refund_amount_cents")
    if refund and paid <= 0:
        errors["refund_amount_cents"] = ["cannot_refund_unpaid_invoice"]
    elif refund and refund > paid - refunded:
        errors["refund_amount_cents"] = ["higher_than_remaining_invoice_amount"]
    if credit - creditable > 1:
        errors["credit_amount_cents"] = ["higher_than_remaining_invoice_amount"]
    if offset and offset > min(invoice["total_amount_cents"] - paid - offsetted, creditable):
        errors["offset_amount_cents"] = ["higher_than_remaining_invoice_amount"]
    remaining = invoice["fees_amount_cents"] - credited - refunded - offsetted
    if total - remaining > 1:
        errors.setdefault("base", []).append("higher_than_remaining_invoice_amount")
    if total <= 0:
        errors.setdefault("base", []).append("total_amount_must_be_positive")
    if errors:
        raise ValidationFailed(errors)
    return credit, refund, offset


def _record(state: EmulatorState, invoice: Record, params: dict[str, Any]) -> Record:
    items = _items(state, invoice, params)
    credit, refund, offset = _amounts(
        state, invoice, params, sum(item["amount_cents"] for item in items)
    )
    total = credit + refund + offset
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
        "credit_status": "available",
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
    """A credit note on a finalized (or voided) invoice; amounts must add up to its items.
    Lago also takes drafts, making draft credit notes; the emulator has none (405)."""
    invoice = get_invoice(state, str(params.get("invoice_id")))
    if invoice["status"] not in ("finalized", "voided"):
        raise MethodNotAllowed("invalid_type_or_status")
    note = _record(state, invoice, params)
    state.credit_notes[note["lago_id"]] = note
    emit(state, "credit_note.created", "credit_note", note)
    return note


def get_credit_note(state: EmulatorState, lago_id: str) -> Record:
    """The credit note, or 404 ``credit_note_not_found``."""
    note = state.credit_notes.get(lago_id)
    if note is None:
        raise NotFound("credit_note")
    return note


async def create(request: Request) -> Response:
    """POST /credit_notes."""
    params = await read_root(request, "credit_note")
    return ok({"credit_note": create_credit_note(state_of(request), params)})


_FILTERS = ("currency", "reason", "credit_status", "refund_status", "invoice_number")


async def index(request: Request) -> Response:
    """GET /credit_notes with CreditNotesQuery's exact-match filters; newest first."""
    state = state_of(request)
    query = request.query_params
    customer_id = query.get("external_customer_id")
    found = [
        n
        for n in reversed(state.credit_notes.values())
        if (customer_id is None or n["customer"]["external_id"] == customer_id)
        and all(query.get(f) in (None, n[f]) for f in _FILTERS)
    ]
    return paginate(request, "credit_notes", found)


async def show(request: Request) -> Response:
    """GET /credit_notes/{lago_id}."""
    note = get_credit_note(state_of(request), request.path_params["lago_id"])
    return ok({"credit_note": note})


async def update(request: Request) -> Response:
    """PUT /credit_notes/{lago_id}: ``refund_status`` (CreditNotesController#update and
    CreditNotes::UpdateService); an unknown status is 422 ``value_is_invalid``."""
    state = state_of(request)
    note = get_credit_note(state, request.path_params["lago_id"])
    params = await read_root(request, "credit_note")
    if "refund_status" in params:
        status = params["refund_status"]
        if status is not None and status not in REFUND_STATUSES:
            raise invalid("refund_status")
        if status != note["refund_status"]:
            note.update(refund_status=status, updated_at=iso(state.now()))
    return ok({"credit_note": note})


def routes() -> list[BaseRoute]:
    """The credit note routes, mounted under ``/api/v1``."""
    return [
        Route("/credit_notes", create, methods=["POST"]),
        Route("/credit_notes", index, methods=["GET"]),
        Route("/credit_notes/{lago_id}", show, methods=["GET"]),
        Route("/credit_notes/{lago_id}", update, methods=["PUT"]),
    ]
