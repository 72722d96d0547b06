"""Finance pages: sign-in, invoices with filters and totals, one invoice, collection.

No page is readable without a session; every POST form carries the session's CSRF token.
People sign in with their username and password (``gateway users``); the session holds
the user's id and session version, checked again on every request, so disabling the
account, a new password or a new role ends the session at once.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.collection import checkout, dunning
from gateway.collection.service import collectable
from gateway.config import CollectionMode
from gateway.errors import BadRequest, Forbidden, GatewayError
from gateway.finance import credits, formatting, service
from gateway.finance.listing import BUCKETS, SORTS, Ageing
from gateway.finance.service import Viewer
from gateway.integrations.stripe.client import StripeError
from gateway.invoices import export, files
from gateway.invoices import service as invoices
from gateway.invoices.schemas import (
    PAYMENT_STATUSES,
    STATUSES,
    InvoiceFilters,
    parse_filters,
    parse_page,
)
from gateway.runtime import Runtime

router = APIRouter()
FILTER_LABELS = {
    "search_term": "Number or customer",
    "external_customer_id": "Customer id",
    "status": "Status",
    "payment_status": "Payment",
    "issuing_date_from": "Issued from",
    "issuing_date_to": "Issued to",
    "currency": "Currency",
}
FILTER_FIELDS = tuple(FILTER_LABELS)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


templates.env.filters.update(formatting.FILTERS)


class SignInRequired(Exception):
    """No valid session: the browser goes to the sign-in page."""


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.parent.state.parts.runtime
    return runtime


def base_of(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> dict[str, str]:
    """The posted form, once its CSRF token matches the session's (else 403)."""
    form = await request.form()
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not isinstance(expected, str):
        raise Forbidden("the form is stale: reload the page", code="csrf_failed")
    if not hmac.compare_digest(sent, expected):
        raise Forbidden("the form is stale: reload the page", code="csrf_failed")
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def viewer_of(request: Request) -> Viewer:
    """The signed-in person, checked against the users table on every request."""
    user_id, version = request.session.get("user_id"), request.session.get("user_version")
    if not isinstance(user_id, int) or not isinstance(version, int):
        raise SignInRequired()
    viewer = await service.current_viewer(runtime_of(request).database, user_id, version)
    if viewer is None:
        request.session.clear()
        raise SignInRequired()
    return viewer


SignedIn = Annotated[Viewer, Depends(viewer_of)]


def page(
    request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any
) -> Response:
    flashes = request.session.pop("flash", [])
    values = {
        "base": base_of(request),
        "viewer": viewer,
        "csrf": csrf_token(request),
        "flashes": flashes,
        "oidc_label": getattr(request.app.state, "oidc_label", None),
        **context,
    }
    return templates.TemplateResponse(request, name, values, status_code=status)


def flash(request: Request, message: str, kind: str = "") -> None:
    request.session["flash"] = [*request.session.get("flash", []), [message, kind]]


def safe_next(request: Request, value: str | None) -> str:
    base = base_of(request)
    if value and value.startswith(f"{base}/") and not value.startswith("//"):
        return value
    return f"{base}/invoices"


@router.get("/", include_in_schema=False)
async def home(request: Request, _: SignedIn) -> Response:
    return RedirectResponse(f"{base_of(request)}/invoices", status_code=303)


def _filters_from(request: Request) -> tuple[InvoiceFilters | None, str | None]:
    try:
        return parse_filters(request.query_params), None
    except GatewayError as exc:
        fields = sorted((exc.details or {}).keys())
        named = ", ".join(FILTER_LABELS.get(name, name) for name in fields)
        hint = "Dates look like 2026-01-31; a currency is three letters."
        return None, f"Some filters are not valid: {named}. {hint}"


def _sorting(request: Request) -> tuple[str | None, bool]:
    sort = request.query_params.get("sort")
    return (sort if sort in SORTS else None), request.query_params.get("dir") == "desc"


@router.get("/invoices", include_in_schema=False)
async def invoice_list(request: Request, viewer: SignedIn) -> Response:
    form = {name: request.query_params.get(name, "") for name in FILTER_FIELDS}
    kept = {k: v for k, v in form.items() if v}
    filters, error = _filters_from(request)
    sort, descending = _sorting(request)
    try:
        number = parse_page(request.query_params)[0]
    except GatewayError:
        number = 1
    listing = service.InvoiceList([], {}, service.Totals(), Ageing())
    if filters is not None:
        listing = await service.invoice_list(
            runtime_of(request).lago, filters, number, sort, descending
        )
    order = {"sort": sort, "dir": "desc" if descending else "asc"} if sort else {}

    def page_query(n: int) -> str:
        return urlencode({**kept, **order, "page": n})

    def sort_query(column: str) -> str:
        flip = "asc" if sort == column and descending else "desc" if sort == column else "asc"
        return urlencode({**kept, "sort": column, "dir": flip})

    return page(
        request,
        "invoices.html",
        viewer,
        section="invoices",
        form=form,
        error=error,
        listing=listing,
        query=urlencode(kept),
        page_query=page_query,
        sort_query=sort_query,
        sort=sort,
        descending=descending,
        sorts=SORTS,
        buckets=BUCKETS,
        statuses=STATUSES,
        payment_statuses=PAYMENT_STATUSES,
    )


@router.get("/invoices/export.csv", include_in_schema=False)
async def invoice_export(request: Request, _: SignedIn) -> Response:
    filters = parse_filters(request.query_params)
    lago = runtime_of(request).lago
    first = await export.first_page(lago, filters)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        export.csv_chunks(lago, filters, first),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="invoices-{stamp}.csv"'},
    )


@router.get("/invoices/{lago_id}", include_in_schema=False)
async def invoice_detail(lago_id: str, request: Request, viewer: SignedIn) -> Response:
    runtime = runtime_of(request)
    view = await service.invoice_view(runtime.database, runtime.lago, lago_id)
    reason = _why_no_collection(runtime, viewer)
    notes = await credits.of_invoice(runtime.lago, view.invoice)
    return page(
        request,
        "invoice.html",
        viewer,
        section="invoices",
        view=view,
        inv=view.invoice,
        can_collect=reason is None and collectable(view.invoice),
        collect_reason=reason,
        notes=notes.items,
        kinds=credits.KINDS,
        reasons=credits.REASONS,
    )


def _why_no_collection(runtime: Runtime, viewer: Viewer) -> str | None:
    """Why this person gets no payment buttons here, in words; None when they do."""
    if runtime.settings.collection != CollectionMode.GATEWAY:
        return "Lago's own payment provider collects invoices here (GATEWAY_COLLECTION=lago)."
    if runtime.stripe is None:
        return (
            "Payment retries and links need Stripe, which is not configured "
            "(GATEWAY_STRIPE_SECRET_KEY)."
        )
    if not viewer.can_write:
        return "Payment retries and links are for operators; you are signed in as a viewer."
    return None


@router.get("/invoices/{lago_id}/pdf", include_in_schema=False)
async def invoice_pdf(lago_id: str, request: Request, viewer: SignedIn) -> Response:
    runtime = runtime_of(request)
    invoice, url = await invoices.locate_pdf(
        runtime.database, runtime.lago, lago_id, actor=viewer.actor
    )
    if url is None:
        return page(
            request,
            "message.html",
            viewer,
            status=202,
            heading="PDF being generated",
            message="Lago is generating this PDF; the page retries in a few seconds.",
            refresh=5,
            back=f"{base_of(request)}/invoices/{lago_id}",
        )
    opened = await files.open_file(url, transport=runtime.files)
    name = invoices.pdf_filename(invoice.get("number"), lago_id)
    return StreamingResponse(
        opened.chunks,
        media_type=opened.content_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def require_operator(viewer: Viewer) -> None:
    if not viewer.can_write:
        raise Forbidden(
            "viewers read; an operator may retry payments, send payment links and refund",
            code="operator_required",
        )


@router.post("/invoices/{lago_id}/retry", include_in_schema=False)
async def invoice_retry(lago_id: str, request: Request, viewer: SignedIn) -> Response:
    await check_csrf(request)
    require_operator(viewer)
    try:
        await dunning.retry_now(runtime_of(request), invoices.check_id(lago_id), actor=viewer.actor)
    except (GatewayError, StripeError) as exc:
        flash(request, f"Not retried: {getattr(exc, 'message', None) or exc}", "error")
    else:
        flash(request, "A new payment attempt was started.")
    return RedirectResponse(f"{base_of(request)}/invoices/{lago_id}", status_code=303)


@router.post("/invoices/{lago_id}/payment-link", include_in_schema=False)
async def invoice_payment_link(lago_id: str, request: Request, viewer: SignedIn) -> Response:
    await check_csrf(request)
    require_operator(viewer)
    try:
        row = await checkout.open_link(
            runtime_of(request), invoices.check_id(lago_id), actor=viewer.actor
        )
    except (GatewayError, StripeError) as exc:
        flash(request, f"No link: {getattr(exc, 'message', None) or exc}", "error")
    else:
        flash(request, f"Payment link for the customer: {row.payment_link}")
    return RedirectResponse(f"{base_of(request)}/invoices/{lago_id}", status_code=303)


@router.get("/collection", include_in_schema=False)
async def collection_overview(request: Request, viewer: SignedIn) -> Response:
    runtime = runtime_of(request)
    view = await service.overview(runtime.database, runtime.lago)
    return page(
        request,
        "collection.html",
        viewer,
        section="collection",
        view=view,
        mode=runtime.settings.collection.value,
    )


def install_error_pages(app: FastAPI) -> None:
    """Errors as pages, not JSON; no session sends the browser to sign in."""

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, exc: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        wanted = urlencode({"next": target}) if request.method == "GET" else ""
        return RedirectResponse(f"{base_of(request)}/login?{wanted}", status_code=303)

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        text = exc.message or exc.error
        if exc.status >= 500:
            text = f"{text} — Lago or Stripe did not answer; try again shortly."
        return await _error_page(request, exc.status, text)

    @app.exception_handler(StarletteHTTPException)
    async def unknown_page(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        text = "There is no such page." if exc.status_code == 404 else str(exc.detail)
        return await _error_page(request, exc.status_code, text)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: Exception) -> Response:
        return await gateway_error(request, exc)


async def _error_page(request: Request, status: int, text: str) -> Response:
    """An error as a page, with the navigation when someone is signed in."""
    try:
        viewer: Viewer | None = await viewer_of(request)
    except SignInRequired:
        viewer = None
    heading = {404: "Not found", 403: "Not allowed"}.get(status, "Something went wrong")
    return page(
        request,
        "message.html",
        viewer,
        status=status,
        heading=heading,
        message=text,
        back=f"{base_of(request)}/invoices",
        refresh=None,
    )
