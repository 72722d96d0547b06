"""Invoice endpoints: list with Lago's filters, fetch, payment status, lifecycle actions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .billing import finalize, set_payment_status
from .clock import iso, new_id
from .errors import MethodNotAllowed, NotFound, invalid
from .http import ok, paginate, query_list, read_json, read_root, state_of
from .invoicing import recompute, serialize
from .outbox import emit
from .state import EmulatorState, Record

PAYMENT_STATUSES = ("pending", "succeeded", "failed")
_FILE_HOST = "https://lago-emulator.test/invoices"


def get_invoice(state: EmulatorState, lago_id: str) -> Record:
    """The invoice, or 404 ``invoice_not_found``."""
    invoice = state.invoices.get(lago_id)
    if invoice is None:
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
    )
    return all(checks)


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


def _metadata(state: EmulatorState, items: list[dict[str, str]]) -> list[Record]:
    now = iso(state.now())
    return [
        {
            "lago_id": new_id(),
            "key": str(item.get("key")),
            "value": str(item.get("value")),
            "created_at": now,
        }
        for item in items
    ]


async def update(request: Request) -> Response:
    """PUT /invoices/{lago_id}: ``payment_status`` and ``metadata``."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    params = await read_root(request, "invoice")
    status = params.get("payment_status")
    if status is not None:
        if status not in PAYMENT_STATUSES:
            raise invalid("payment_status")
        if invoice["status"] == "draft":
            raise MethodNotAllowed("payment_status_update_on_draft_invoice")
        if invoice["status"] == "voided":
            raise MethodNotAllowed("update_on_voided_invoice")
        set_payment_status(state, invoice, status)
    if isinstance(params.get("metadata"), list):
        invoice["metadata"] = _metadata(state, params["metadata"])
    return ok({"invoice": serialize(state, invoice)})


async def refresh(request: Request) -> Response:
    """PUT /invoices/{lago_id}/refresh: recompute a draft (others come back unchanged)."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    if invoice["status"] == "draft":
        recompute(invoice)
        invoice["updated_at"] = iso(state.now())
    return ok({"invoice": serialize(state, invoice)})


async def finalize_draft(request: Request) -> Response:
    """PUT /invoices/{lago_id}/finalize: drafts only (404 otherwise, as Lago)."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    if invoice["status"] != "draft":
        raise NotFound("invoice")
    finalize(state, invoice)
    return ok({"invoice": serialize(state, invoice)})


async def void(request: Request) -> Response:
    """POST /invoices/{lago_id}/void: finalized and not paid."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    await read_json(request)
    if invoice["status"] != "finalized" or invoice["payment_status"] == "succeeded":
        raise MethodNotAllowed("not_voidable")
    invoice.update(status="voided", updated_at=iso(state.now()), total_due_amount_cents=0)
    emit(state, "invoice.voided", "invoice", serialize(state, invoice))
    return ok({"invoice": serialize(state, invoice)})


async def download(request: Request) -> Response:
    """POST /invoices/{lago_id}/download: finalized only; sets ``file_url``."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    if invoice["status"] not in ("finalized", "voided"):
        raise MethodNotAllowed("is_draft")
    invoice["file_url"] = f"{_FILE_HOST}/{invoice['lago_id']}.pdf"
    return ok({"invoice": serialize(state, invoice)})


async def retry_payment(request: Request) -> Response:
    """POST /invoices/{lago_id}/retry_payment: 200 with an empty body; collection is async."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    if invoice["status"] != "finalized" or invoice["payment_status"] == "succeeded":
        raise MethodNotAllowed("invalid_status")
    invoice["payment_attempts"] = invoice.get("payment_attempts", 0) + 1
    return Response(status_code=200)
