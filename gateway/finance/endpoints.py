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

from gateway.audit.service import record
from gateway.collection import checkout, dunning
from gateway.collection.service import collectable
from gateway.config import CollectionMode
from gateway.errors import BadRequest, Forbidden, GatewayError
from gateway.finance import service
from gateway.finance.service import Viewer
from gateway.integrations.stripe.client import StripeError
from gateway.invoices import export, files
from gateway.invoices import service as invoices
from gateway.invoices.money import display
from gateway.invoices.schemas import (
    PAYMENT_STATUSES,
    STATUSES,
    InvoiceFilters,
    parse_filters,
    parse_page,
)
from gateway.runtime import Runtime
from gateway.users import service as users
from gateway.users.service import Refusal
from gateway.users.throttle import SignInThrottle

router = APIRouter()
FILTER_FIELDS = (
    "external_customer_id",
    "status",
    "payment_status",
    "issuing_date_from",
    "issuing_date_to",
    "currency",
)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _money(cents: Any, currency: str | None) -> str:
    return "—" if cents is None else display(cents, currency or "USD")


def _when(value: Any) -> str:
    if value is None or value == "":
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


templates.env.filters["money"] = _money
templates.env.filters["when"] = _when


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


@router.get("/login", include_in_schema=False)
async def login_form(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html", None, next=safe_next(request, next), error=None, username="")


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await check_csrf(request)
    runtime, client = runtime_of(request), client_of(request)
    throttle: SignInThrottle = request.app.state.sign_in_throttle
    username = form.get("username", "").strip().lower()[:64]
    wait = throttle.retry_after(client)
    outcome = (
        Refusal("throttled")
        if wait
        else await users.sign_in(runtime.database, username, form.get("password", ""))
    )
    if isinstance(outcome, Refusal):
        if outcome.reason in ("credentials", "disabled"):
            throttle.failed(client)
        await audit_sign_in(runtime, "finance", "rejected", username, outcome.reason)
        return _refused(request, form, outcome, wait)
    throttle.succeeded(client)
    await audit_sign_in(runtime, outcome.actor, "success", username, None)
    request.session.clear()  # a fresh session (and CSRF token) for the signed-in person
    request.session.update({"user_id": outcome.id, "user_version": outcome.session_version})
    return RedirectResponse(safe_next(request, form.get("next")), status_code=303)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _refused(request: Request, form: dict[str, str], refusal: Refusal, wait: int) -> Response:
    if refusal.reason in ("locked", "throttled"):
        if refusal.until is not None:
            wait = int((refusal.until - datetime.now(UTC)).total_seconds())
        minutes = max(1, -(-wait // 60))
        error = f"Too many failed sign-ins. Try again in {minutes} minutes."
        status = 429
    else:
        error = "That username and password do not match an active account."
        status = 401
    return page(
        request,
        "login.html",
        None,
        status=status,
        next=form.get("next", ""),
        username=form.get("username", ""),
        error=error,
    )


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    await check_csrf(request)
    request.session.clear()
    return RedirectResponse(f"{base_of(request)}/login", status_code=303)


def _filters_from(request: Request) -> tuple[InvoiceFilters | None, str | None]:
    try:
        return parse_filters(request.query_params), None
    except GatewayError as exc:
        fields = ", ".join(sorted((exc.details or {}).keys()))
        return None, f"Some filters are not valid: {fields}."


@router.get("/invoices", include_in_schema=False)
async def invoice_list(request: Request, viewer: SignedIn) -> Response:
    form = {name: request.query_params.get(name, "") for name in FILTER_FIELDS}
    kept = {k: v for k, v in form.items() if v}
    filters, error = _filters_from(request)
    try:
        number = parse_page(request.query_params)[0]
    except GatewayError:
        number = 1
    listing = service.InvoiceList([], {}, service.Totals())
    if filters is not None:
        listing = await service.invoice_list(runtime_of(request).lago, filters, number)

    def page_query(n: int) -> str:
        return urlencode({**kept, "page": n})

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
    gateway_mode = runtime.settings.collection == CollectionMode.GATEWAY
    can_collect = gateway_mode and runtime.stripe is not None and collectable(view.invoice)
    return page(
        request,
        "invoice.html",
        viewer,
        section="invoices",
        view=view,
        inv=view.invoice,
        can_collect=can_collect,
    )


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
    opened = await files.open_file(url)
    name = invoices.pdf_filename(invoice.get("number"), lago_id)
    return StreamingResponse(
        opened.chunks,
        media_type=opened.content_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _require_write(viewer: Viewer) -> None:
    if not viewer.can_write:
        raise Forbidden(
            "viewers read; an operator may retry payments and send payment links",
            code="operator_required",
        )


@router.post("/invoices/{lago_id}/retry", include_in_schema=False)
async def invoice_retry(lago_id: str, request: Request, viewer: SignedIn) -> Response:
    await check_csrf(request)
    _require_write(viewer)
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
    _require_write(viewer)
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


async def audit_action(
    runtime: Runtime, actor: str, action: str, outcome: str, target: str, reason: str | None
) -> None:
    async with runtime.database.session() as session:
        detail = {"reason": reason} if reason else None
        record(session, actor=actor, action=action, outcome=outcome, target=target, detail=detail)
        await session.commit()


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
        heading = {404: "Not found", 403: "Not allowed"}.get(exc.status, "Something went wrong")
        text = exc.message or exc.error
        if exc.status >= 500:
            text = f"{text} — Lago or Stripe did not answer; try again shortly."
        return page(
            request,
            "message.html",
            None,
            status=exc.status,
            heading=heading,
            message=text,
            back=f"{base_of(request)}/invoices",
            refresh=None,
        )

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: Exception) -> Response:
        return await gateway_error(request, exc)


async def audit_sign_in(
    runtime: Runtime, actor: str, outcome: str, target: str, reason: str | None
) -> None:
    """Audit one sign-in (``finance.sign_in``): who tried, and why it was refused."""
    await audit_action(runtime, actor, "finance.sign_in", outcome, target, reason)
