"""Credit notes on finalized invoices: credited, refunded or offset amounts.

Create, show, update, void and download (``app/controllers/api/v1/credit_notes_controller.rb``);
the lists and the estimate are in ``credit_note_queries``, the validations in
``credit_note_rules``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import credit_note_queries as queries
from . import credit_note_rules as rules
from .clock import iso, new_id
from .errors import MethodNotAllowed, NotFound, ValidationFailed, invalid
from .http import ok, read_root, state_of
from .invoices import get_invoice
from .outbox import emit
from .state import EmulatorState, Record
from .wallets import top_up

_FILE_HOST = "https://lago.emulator.test/credit_notes"
_PARTS = {"credit": "credit_amount_cents", "refund": "refund_amount_cents"}
_PARTS["offset"] = "offset_amount_cents"


def _amounts(params: dict[str, Any]) -> dict[str, int]:
    return {part: int(params.get(key) or 0) for part, key in _PARTS.items()}


def _metadata(value: Any) -> dict[str, Any] | None:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else None


def _record(state: EmulatorState, invoice: Record, params: dict[str, Any]) -> Record:
    """``CreditNotes::CreateService#call``: items first, then the amounts' checks."""
    made = rules.items(state, invoice, params.get("items"))
    amounts = _amounts(params)
    errors = rules.amount_errors(state, invoice, amounts, sum(a for _, a in made))
    if errors:
        raise ValidationFailed(errors)
    items = [
        {
            "lago_id": new_id(),
            "amount_cents": a,
            "precise_amount_cents": f"{a:.1f}",
            "amount_currency": invoice["currency"],
            "fee": f,
        }
        for f, a in made
    ]
    return _wire(state, invoice, params, amounts, items)


def _wire(
    state: EmulatorState,
    invoice: Record,
    params: dict[str, Any],
    amounts: dict[str, int],
    items: list[Record],
) -> Record:
    """The new credit note as ``V1::CreditNoteSerializer`` renders it, with its includes."""
    credit, refund, offset = amounts["credit"], amounts["refund"], amounts["offset"]
    total = credit + refund + offset
    sequence = state.next_sequence("credit_note")
    now = iso(state.now())
    return {
        "lago_id": new_id(),
        "sequential_id": sequence,
        "billing_entity_code": invoice.get("billing_entity_code") or "default",
        "number": f"{invoice['number']}-CN{sequence:03d}",
        "lago_invoice_id": invoice["lago_id"],
        "invoice_number": invoice["number"],
        "purchase_order_number": invoice.get("purchase_order_number"),
        "issuing_date": state.now().date().isoformat(),
        "credit_status": "available",
        "refund_status": "pending" if refund else None,
        "reason": params.get("reason") or "other",
        "description": params.get("description"),
        "currency": invoice["currency"],
        "total_amount_cents": total,
        "precise_total_amount_cents": f"{total:.1f}",
        "taxes_amount_cents": 0,
        "precise_taxes_amount_cents": "0.0",
        "taxes_rate": 0.0,
        "sub_total_excluding_taxes_amount_cents": total,
        "balance_amount_cents": credit,
        "credit_amount_cents": credit,
        "refund_amount_cents": refund,
        "offset_amount_cents": offset,
        "coupons_adjustment_amount_cents": 0,
        "created_at": now,
        "updated_at": now,
        "file_url": None,
        "xml_url": None,
        "items": items,
        "applied_taxes": [],
        "error_details": [],
        "self_billed": bool(invoice.get("self_billed")),
        "customer": invoice["customer"],
    }


def _void_prepaid_credit(state: EmulatorState, invoice: Record, note: Record) -> None:
    """``CreateService#void_prepaid_credit``: a credit invoice's refund takes its credits back
    out of the wallet (a settled ``voided`` transaction naming the credit note)."""
    wallet = rules.credit_wallet(state, invoice)
    if wallet is None or note["refund_amount_cents"] <= 0:
        return
    credits = rules.wallet_credits(wallet, note["refund_amount_cents"])
    top_up(
        state, wallet, {"voided_credits": str(credits)}, {"lago_credit_note_id": note["lago_id"]}
    )


def _generate_documents(state: EmulatorState, note: Record) -> None:
    """``CreditNotes::GenerateDocumentsJob``: the PDF, then ``credit_note.generated``."""
    note["file_url"] = f"{_FILE_HOST}/{note['lago_id']}.pdf"
    emit(state, "credit_note.generated", "credit_note", note)


def create_credit_note(state: EmulatorState, params: dict[str, Any]) -> Record:
    """A credit note on a finalized (or voided) invoice; amounts must add up to its items.
    Lago also takes drafts, making draft credit notes; the emulator has none (405)."""
    invoice = get_invoice(state, str(params.get("invoice_id")))
    if invoice["status"] not in ("finalized", "voided"):
        raise MethodNotAllowed("invalid_type_or_status")
    rules.check_type_or_status(state, invoice, _amounts(params))
    if params.get("reason") is not None and params["reason"] not in rules.REASONS:
        raise invalid("reason")  # enum :reason, validate: true (on the first save!)
    note = _record(state, invoice, params)
    metadata = _metadata(params.get("metadata"))
    if metadata is not None:
        note["metadata"] = metadata
    state.credit_notes[note["lago_id"]] = note
    _void_prepaid_credit(state, invoice, note)
    emit(state, "credit_note.created", "credit_note", note)
    _generate_documents(state, note)
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


async def show(request: Request) -> Response:
    """GET /credit_notes/{lago_id}."""
    note = get_credit_note(state_of(request), request.path_params["lago_id"])
    return ok({"credit_note": note})


def _merge_metadata(note: Record, value: Any) -> bool:
    """``Metadata::UpdateItemService`` with ``partial: true``: merged, created when given and
    not empty, never deleted; whether anything changed."""
    given = _metadata(value)
    if not given:
        return False
    merged = {**(note.get("metadata") or {}), **given}
    changed = merged != note.get("metadata")
    note["metadata"] = merged
    return changed


async def update(request: Request) -> Response:
    """PUT /credit_notes/{lago_id}: ``refund_status`` and ``metadata`` (merged), as
    CreditNotes::UpdateService; an unknown status is 422 ``value_is_invalid``."""
    state = state_of(request)
    note = get_credit_note(state, request.path_params["lago_id"])
    params = await read_root(request, "credit_note")
    changed = False
    if "refund_status" in params:
        status = params["refund_status"]
        if status is not None and status not in rules.REFUND_STATUSES:
            raise invalid("refund_status")
        changed = status != note["refund_status"]
        note["refund_status"] = status
    changed = _merge_metadata(note, params.get("metadata")) or changed
    if changed:
        note["updated_at"] = iso(state.now())
    return ok({"credit_note": note})


async def void(request: Request) -> Response:
    """PUT /credit_notes/{lago_id}/void: ``CreditNotes::VoidService``: what is left of the
    credit is voided (405 ``no_voidable_amount`` when nothing is: ``CreditNote#voidable?``)."""
    state = state_of(request)
    note = get_credit_note(state, request.path_params["lago_id"])
    if note["credit_status"] == "voided" or note["balance_amount_cents"] <= 0:
        raise MethodNotAllowed("no_voidable_amount")
    now = iso(state.now())
    note.update(credit_status="voided", balance_amount_cents=0, updated_at=now)
    return ok({"credit_note": note})


_WITHOUT_INCLUDES = ("customer", "items", "applied_taxes", "error_details")


async def download(request: Request) -> Response:
    """POST /credit_notes/{lago_id}/download (and ``download_pdf``): the credit note without
    its includes once its file exists; else an empty 200 while the file is made
    (``CreditNotesController#download_pdf``)."""
    state = state_of(request)
    note = get_credit_note(state, request.path_params["lago_id"])
    if not note.get("file_url"):
        _generate_documents(state, note)
        return Response(status_code=200)
    return ok({"credit_note": {k: v for k, v in note.items() if k not in _WITHOUT_INCLUDES}})


def routes() -> list[BaseRoute]:
    """The credit note routes, mounted under ``/api/v1``."""
    return [
        Route("/credit_notes", create, methods=["POST"]),
        Route("/credit_notes", queries.index, methods=["GET"]),
        Route("/credit_notes/estimate", queries.estimate, methods=["POST"]),
        Route("/credit_notes/{lago_id}", show, methods=["GET"]),
        Route("/credit_notes/{lago_id}", update, methods=["PUT"]),
        Route("/credit_notes/{lago_id}/void", void, methods=["PUT"]),
        Route("/credit_notes/{lago_id}/download", download, methods=["POST"]),
        Route("/credit_notes/{lago_id}/download_pdf", download, methods=["POST"]),
        Route(
            "/customers/{external_customer_id}/credit_notes",
            queries.customer_index,
            methods=["GET"],
        ),
    ]
