"""Invoice endpoints: list with Lago's filters, fetch, payment status, lifecycle actions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .billing import finalize, set_payment_status
from .clock import iso, new_id
from .errors import LagoError, MethodNotAllowed, NotFound, error_body, invalid
from .http import ok, paginate, query_list, read_json, read_root, state_of
from .invoice_files import file_url
from .invoicing import recompute, serialize
from .outbox import emit
from .state import EmulatorState, Record

PAYMENT_STATUSES = ("pending", "succeeded", "failed")
# Invoice::VISIBLE_STATUS; generating, open, closed and deleted invoices are not in the API.
VISIBLE = ("draft", "finalized", "voided", "failed", "pending")
METADATA_PER_INVOICE = 5  # Metadata::InvoiceMetadata::COUNT_PER_INVOICE


def get_invoice(state: EmulatorState, lago_id: str, statuses: tuple[str, ...] = VISIBLE) -> Record:
    """The invoice, or 404 ``invoice_not_found``: Lago's controllers look invoices up in a
    status scope (``visible``, ``draft``, ``finalized``; app/models/invoice.rb)."""
    invoice = state.invoices.get(lago_id)
    if invoice is None or invoice["status"] not in statuses:
        raise NotFound("invoice")
    return invoice


def _matches(invoice: Record, request: Request) -> bool:
    query = request.query_params
    customer_id = query.get("external_customer_id") or query.get("customer_external_id")
    statuses = query_list(request, "statuses") or query_list(request, "status")
    payments = query_list(request, "payment_statuses") or query_list(request, "payment_status")
    checks = (
        customer_id is None or invoice["customer"]["external_id"] == customer_id,
        not statuses or invoice["status"] in statuses,
        not payments or invoice["payment_status"] in payments,
        query.get("currency", invoice["currency"]) == invoice["currency"],
        query.get("invoice_type", invoice["invoice_type"]) == invoice["invoice_type"],
        query.get("issuing_date_from", "") <= invoice["issuing_date"],
        invoice["issuing_date"] <= query.get("issuing_date_to", "9999-12-31"),
        int(query.get("amount_from", 0)) <= invoice["total_amount_cents"],
        invoice["total_amount_cents"] <= int(query.get("amount_to", 1 << 62)),
        _searched(state_of(request), invoice, query.get("search_term"), customer_id is None),
    )
    return all(checks)


def _searched(state: EmulatorState, invoice: Record, term: str | None, customers: bool) -> bool:
    """InvoicesQuery#matching_invoices (app/queries/invoices_query.rb): the number contains
    the term (ILIKE), or the term is the invoice's id, or (without a customer filter) the
    customer's name, firstname, lastname, external id or email contains it."""
    if not term:
        return True
    needle = term.lower()
    if needle in str(invoice.get("number") or "").lower() or term == invoice["lago_id"]:
        return True
    if not customers:
        return False
    external_id = invoice["customer"]["external_id"]
    customer = state.customers.get(external_id) or invoice["customer"]
    fields = ("name", "firstname", "lastname", "external_id", "email")
    return any(needle in str(customer.get(name) or "").lower() for name in fields)


async def index(request: Request) -> Response:
    """GET /invoices with Lago's filters; newest first, as Lago orders them."""
    state = state_of(request)
    found = [
        serialize(state, i, listed=True)
        for i in reversed(state.invoices.values())
        if i["status"] != "open" and _matches(i, request)
    ]
    return paginate(request, "invoices", found)


async def show(request: Request) -> Response:
    """GET /invoices/{lago_id}."""
    state = state_of(request)
    return ok({"invoice": serialize(state, get_invoice(state, request.path_params["lago_id"]))})


def _metadata(state: EmulatorState, invoice: Record, items: list[Any]) -> list[Record]:
    """Invoices::Metadata::UpdateService: an item with a known ``id`` updates that entry, any
    other item is a new entry, and entries not named are removed."""
    now = iso(state.now())
    known = {entry["lago_id"]: entry for entry in invoice["metadata"]}
    kept = []
    for item in items:
        entry = known.get(str(item.get("id")))
        if entry is None:
            entry = {"lago_id": new_id(), "key": None, "value": None, "created_at": now}
        entry.update({k: item[k] for k in ("key", "value") if k in item})
        kept.append(entry)
    return kept


async def update(request: Request) -> Response:
    """PUT /invoices/{lago_id}: ``payment_status`` and ``metadata``, checked in the order of
    InvoicesController#update and Invoices::UpdateService."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    params = await read_root(request, "invoice")
    if invoice["status"] == "voided":
        raise MethodNotAllowed("update_on_voided_invoice")
    metadata = params.get("metadata") if isinstance(params.get("metadata"), list) else None
    if invoice["status"] == "draft" and metadata is not None:
        raise MethodNotAllowed("metadata_on_draft_invoice")
    status = params.get("payment_status", invoice["payment_status"])
    if status not in PAYMENT_STATUSES:
        raise invalid("payment_status")
    if metadata and len(metadata) > METADATA_PER_INVOICE:
        raise invalid("metadata", "invalid_count")
    if invoice["status"] == "draft" and status != invoice["payment_status"]:
        raise MethodNotAllowed("payment_status_update_on_draft_invoice")
    if status == "succeeded":
        invoice["payment_overdue"] = False
    set_payment_status(state, invoice, status)
    if metadata is not None:
        invoice["metadata"] = _metadata(state, invoice, metadata)
    return ok({"invoice": serialize(state, invoice)})


def _subscription_invoice(invoice: Record) -> None:
    """``forbidden_failure!`` of Invoices::RefreshDraftService and
    RefreshDraftAndFinalizeService: only subscription invoices are refreshed or finalized."""
    if invoice["invoice_type"] != "subscription":
        raise LagoError(403, error_body(403, "feature_unavailable"))


async def refresh(request: Request) -> Response:
    """PUT /invoices/{lago_id}/refresh: recompute a draft (others come back unchanged)."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    _subscription_invoice(invoice)
    if invoice["status"] == "draft":
        recompute(invoice)
        invoice["updated_at"] = iso(state.now())
    return ok({"invoice": serialize(state, invoice)})


async def finalize_draft(request: Request) -> Response:
    """PUT /invoices/{lago_id}/finalize: drafts only (404 otherwise, as Lago)."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"], ("draft",))
    _subscription_invoice(invoice)
    finalize(state, invoice)
    return ok({"invoice": serialize(state, invoice)})


async def void(request: Request) -> Response:
    """POST /invoices/{lago_id}/void: Invoice's AASM ``void`` event goes from ``finalized``
    only, whatever the payment status (Invoices::VoidService); else 405 ``not_voidable``."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    await read_json(request)
    if invoice["status"] != "finalized":
        raise MethodNotAllowed("not_voidable")
    now = iso(state.now())
    invoice.update(status="voided", updated_at=now, voided_at=now, total_due_amount_cents=0)
    emit(state, "invoice.voided", "invoice", serialize(state, invoice))
    return ok({"invoice": serialize(state, invoice)})


async def lose_dispute(request: Request) -> Response:
    """POST /invoices/{lago_id}/lose_dispute: Invoices::LoseDisputeService. Only a finalized
    or voided invoice can lose a dispute (``payment_dispute_losable?``, else 405
    ``not_disputable``); the first date is kept and the invoice is no longer overdue."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    if invoice["status"] not in ("finalized", "voided"):
        raise MethodNotAllowed("not_disputable")
    now = iso(state.now())
    invoice["payment_dispute_lost_at"] = invoice.get("payment_dispute_lost_at") or now
    invoice.update(payment_overdue=False, updated_at=now)
    emit(state, "invoice.payment_dispute_lost", "invoice", serialize(state, invoice))
    return ok({"invoice": serialize(state, invoice)})


async def download(request: Request) -> Response:
    """POST /invoices/{lago_id}/download: finalized invoices only (404 otherwise, as
    InvoicesController#download_pdf); sets ``file_url`` at once (Lago answers an empty 200
    and generates the file in a job the first time)."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"], ("finalized",))
    invoice["file_url"] = file_url(state, invoice)
    return ok({"invoice": serialize(state, invoice)})


async def retry_payment(request: Request) -> Response:
    """POST /invoices/{lago_id}/retry_payment: 200 with an empty body; collection is async.
    Invoices::Payments::RetryService refuses drafts, voided and paid invoices."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    if invoice["status"] in ("draft", "voided") or invoice["payment_status"] == "succeeded":
        raise MethodNotAllowed("invalid_status")
    invoice["payment_attempts"] = invoice.get("payment_attempts", 0) + 1
    return Response(status_code=200)
