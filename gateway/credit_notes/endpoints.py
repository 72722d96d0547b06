"""Lago's credit note routes: the same paths, bodies and answers as Lago's API.

Reads (lists, one credit note, the estimate, the PDF) need ``billing:read``; create, update
and void need ``billing:write``. Every change, and every download (it makes the PDF), is
audited as ``credit_notes.<action>`` with its outcome.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from gateway.billing.payloads import body_schema, read_root
from gateway.credit_notes.schemas import CreditNoteCreate, CreditNoteEstimate, CreditNoteUpdate
from gateway.credit_notes.service import CreditNotes
from gateway.http.auth import BillingReader, BillingWriter
from gateway.http.dependencies import RuntimeDep
from gateway.http.pagination import LagoPage, query_pairs
from gateway.http.responses import OrjsonResponse

router = APIRouter(prefix="/api/v1", tags=["credit_notes"])
Page = LagoPage
PerPage = Annotated[int | None, Query(ge=1, le=1000, description="Items per page (Lago: 20)")]


def _answer(content: dict[str, object]) -> Response:
    """Lago's answer; an empty 200 when Lago sent no body (a PDF still being made)."""
    return OrjsonResponse(content) if content else Response(status_code=200)


@router.post("/credit_notes", openapi_extra=body_schema(CreditNoteCreate))
async def create_credit_note(
    request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Create a credit note on an invoice; its refund part is refunded on Stripe."""
    params = read_root(await request.body(), "credit_note")
    return _answer(await CreditNotes(runtime).create(params, principal.name))


@router.get("/credit_notes")
async def list_credit_notes(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """Credit notes, newest first, with Lago's filters (``external_customer_id``, ``reason``,
    ``credit_status``, ``refund_status``, ``types[]``, dates, amounts, ``search_term``…)."""
    params = query_pairs(request)
    return _answer(await CreditNotes(runtime).listing(params))  # fmt: skip


@router.post("/credit_notes/estimate", openapi_extra=body_schema(CreditNoteEstimate))
async def estimate_credit_note(request: Request, runtime: RuntimeDep, _: BillingWriter) -> Response:
    """What a credit note of these items could credit and refund; nothing is created."""
    params = read_root(await request.body(), "credit_note")
    return _answer(await CreditNotes(runtime).estimate(params))


@router.get("/credit_notes/{lago_id}")
async def get_credit_note(lago_id: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One credit note with its items, taxes and customer."""
    return _answer(await CreditNotes(runtime).get(lago_id))


@router.put("/credit_notes/{lago_id}", openapi_extra=body_schema(CreditNoteUpdate))
async def update_credit_note(
    lago_id: str, request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Set the refund status or merge metadata."""
    params = read_root(await request.body(), "credit_note")
    return _answer(await CreditNotes(runtime).update(lago_id, params, principal.name))


@router.put("/credit_notes/{lago_id}/void")
async def void_credit_note(lago_id: str, runtime: RuntimeDep, principal: BillingWriter) -> Response:
    """Void the credit still available on the credit note (405 when none is)."""
    return _answer(await CreditNotes(runtime).void(lago_id, principal.name))


@router.post("/credit_notes/{lago_id}/download")
async def download_credit_note(
    lago_id: str, runtime: RuntimeDep, principal: BillingReader
) -> Response:
    """The credit note with its ``file_url``; an empty 200 while Lago makes the PDF."""
    return _answer(await CreditNotes(runtime).download(lago_id, principal.name))


@router.post("/credit_notes/{lago_id}/download_pdf")
async def download_credit_note_pdf(
    lago_id: str, runtime: RuntimeDep, principal: BillingReader
) -> Response:
    """Lago's other name for ``download``."""
    return _answer(await CreditNotes(runtime).download(lago_id, principal.name))


@router.get("/customers/{external_customer_id}/credit_notes")
async def list_customer_credit_notes(
    external_customer_id: str,
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """A customer's credit notes (404 ``customer_not_found``), with the same filters."""
    params = query_pairs(request)
    return _answer(await CreditNotes(runtime).listing(params, external_customer_id))  # fmt: skip
