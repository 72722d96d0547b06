"""Lago-compatible invoice routes, the PDF and the CSV export.

``POST /api/v1/invoices/{lago_id}/retry_payment`` is collection's (it may start dunning):
``gateway.collection.endpoints``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from gateway.billing.payloads import body_schema, read_root
from gateway.errors import BadRequest, NotServed
from gateway.http.auth import BillingReader, BillingWriter
from gateway.http.dependencies import RuntimeDep
from gateway.http.pagination import LagoPage, query_pairs
from gateway.invoices import export, files, one_off, service
from gateway.invoices.schemas import PdfPending, parse_filters, parse_listing
from gateway.runtime import Runtime

router = APIRouter(tags=["invoices"])


def _json(content: Any) -> Response:
    if not content:
        return Response(status_code=200)
    return Response(orjson.dumps(content), media_type="application/json")


async def read_body(request: Request, root: str | None = None) -> dict[str, Any] | None:
    """The JSON object of a Lago-style body (``{root: {...}}``), None when empty; 400 otherwise."""
    raw = await request.body()
    if not raw.strip():
        if root is not None:
            raise BadRequest(f"param is missing or the value is empty: {root}")
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from exc
    if not isinstance(body, dict) or (root is not None and not isinstance(body.get(root), dict)):
        raise BadRequest(f"param is missing or the value is empty: {root or 'body'}")
    return body


@router.get("/api/v1/invoices")
async def list_invoices(request: Request, runtime: RuntimeDep, _: BillingReader) -> Response:
    """Lago's invoice list: its filters (``statuses[]``, ``payment_statuses[]``, dates...)
    and pagination, passed through."""
    filters, page, per_page = parse_listing(request.query_params, default_per_page=100)
    return _json(await service.list_page(runtime.lago, filters, page, per_page))


@router.post("/api/v1/invoices", openapi_extra=body_schema(one_off.OneOffInvoiceCreate))
async def create_one_off_invoice(
    request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Issue a one-off invoice of add-on fees, finalized at once (audited)."""
    params = read_root(await request.body(), "invoice")
    return _json(await one_off.create(runtime.database, runtime.lago, params, principal.name))


@router.get("/api/v1/invoices/{lago_id}")
async def get_invoice(lago_id: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One invoice with its fees, credits and customer."""
    return _json({"invoice": await service.fetch(runtime.lago, lago_id)})


async def invoice_action(
    runtime: Runtime, lago_id: str, action: str, actor: str, body: dict[str, Any] | None
) -> Response:
    """Run one invoice action in Lago (audited) and answer as Lago answered."""
    answer = await service.act(
        runtime.database, runtime.lago, lago_id, action, actor=actor, body=body
    )
    return _json(answer)


@router.put("/api/v1/invoices/{lago_id}")
async def update_invoice(
    lago_id: str, request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Set ``payment_status`` or ``metadata`` (audited)."""
    body = await read_body(request, "invoice")
    return await invoice_action(runtime, lago_id, "update", principal.name, body)


@router.post("/api/v1/invoices/{lago_id}/download")
@router.post("/api/v1/invoices/{lago_id}/download_pdf")  # Lago's other name for it
async def download_invoice(lago_id: str, runtime: RuntimeDep, principal: BillingReader) -> Response:
    """The invoice with its ``file_url``, or 200 with no body while the PDF is generated."""
    return await invoice_action(runtime, lago_id, "download", principal.name, None)


@router.put("/api/v1/invoices/{lago_id}/refresh")
async def refresh_invoice(lago_id: str, runtime: RuntimeDep, principal: BillingWriter) -> Response:
    """Recompute a draft invoice (audited)."""
    return await invoice_action(runtime, lago_id, "refresh", principal.name, None)


@router.put("/api/v1/invoices/{lago_id}/finalize")
async def finalize_invoice(lago_id: str, runtime: RuntimeDep, principal: BillingWriter) -> Response:
    """Finalize a draft invoice (audited)."""
    return await invoice_action(runtime, lago_id, "finalize", principal.name, None)


@router.post("/api/v1/invoices/{lago_id}/void")
async def void_invoice(
    lago_id: str, request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Void a finalized, unpaid invoice; optional credit note and refund amounts (audited)."""
    return await invoice_action(runtime, lago_id, "void", principal.name, await read_body(request))


@router.get("/api/v1/fees", tags=["fees"])
async def list_fees(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    external_customer_id: str | None = None,
    fee_type: str | None = None,
    payment_status: str | None = None,
    page: LagoPage = None,
    per_page: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Response:
    """Fees of every invoice, oldest first, with Lago's filters."""
    return _json(await service.fees(runtime.lago, query_pairs(request)))


@router.get("/api/v1/fees/{lago_id}", tags=["fees"])
async def get_fee(lago_id: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One fee."""
    return _json(await service.fee(runtime.lago, lago_id))


@router.post("/api/v1/invoices/preview")
async def preview_invoice(_: BillingReader) -> Response:
    """Not served: Lago's invoice preview (405 ``not_served_by_gateway``)."""
    raise NotServed(
        "Lago's invoice preview (a premium Lago feature) is not served; the charges of the "
        "current period so far are in the customer's current usage",
        "GET /api/v1/customers/{external_customer_id}/current_usage",
    )


@router.post("/api/v1/invoices/{lago_id}/retry")
async def retry_invoice(lago_id: str, _: BillingWriter) -> Response:
    """Not served: re-generating an invoice a tax provider failed (405)."""
    raise NotServed(
        "retrying an invoice whose tax computation failed is not served: no tax provider is "
        "connected, so no invoice fails that way; to collect an invoice again, retry its payment",
        f"POST /api/v1/invoices/{lago_id}/retry_payment",
    )


@router.put("/api/v1/fees/{lago_id}")
@router.delete("/api/v1/fees/{lago_id}")
async def change_fee(lago_id: str, _: BillingWriter) -> Response:
    """Not served: changing or deleting a fee not yet invoiced (405)."""
    raise NotServed(
        "fees are changed through their invoice: a fee's payment status follows the invoice's",
        "PUT /api/v1/invoices/{lago_id}",
    )


@router.get("/gateway/invoices/export.csv", response_class=StreamingResponse)
async def export_invoices(request: Request, runtime: RuntimeDep, _: BillingReader) -> Response:
    """Every invoice matching Lago's filters as CSV, streamed page by page from Lago."""
    filters = parse_filters(request.query_params)
    first = await export.first_page(runtime.lago, filters)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        export.csv_chunks(runtime.lago, filters, first),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="invoices-{stamp}.csv"'},
    )


@router.get(
    "/gateway/invoices/{lago_id}/pdf",
    response_class=StreamingResponse,
    responses={202: {"model": PdfPending, "description": "Lago is generating the PDF"}},
)
async def invoice_pdf(lago_id: str, runtime: RuntimeDep, principal: BillingReader) -> Response:
    """The invoice's PDF, streamed from Lago; 202 while Lago generates it (ask again)."""
    return await pdf_response(runtime, lago_id, principal.name)


async def pdf_response(runtime: Runtime, lago_id: str, actor: str) -> Response:
    """The PDF as a download, or 202 ``generating`` with ``Retry-After``."""
    invoice, url = await service.locate_pdf(runtime.database, runtime.lago, lago_id, actor=actor)
    if url is None:
        pending = PdfPending(lago_id=lago_id).model_dump()
        return Response(
            orjson.dumps(pending),
            status_code=202,
            media_type="application/json",
            headers={"Retry-After": "5"},
        )
    opened = await files.open_file(
        url,
        wait_seconds=max(runtime.settings.lago_timeout_seconds, 30.0),
        transport=runtime.files,
    )
    name = service.pdf_filename(invoice.get("number"), lago_id)
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if opened.content_length:
        headers["Content-Length"] = opened.content_length
    return StreamingResponse(opened.chunks, media_type=opened.content_type, headers=headers)
