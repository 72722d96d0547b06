"""The finance customer pages: a searchable list of Lago's customers, and one customer with
its subscriptions, usage against allowances, wallet, invoices, payments, credit notes and
audit trail."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.finance import customer_view
from gateway.finance.customer_rows import units
from gateway.finance.customer_view import Sources
from gateway.finance.endpoints import SignedIn, base_of, page, runtime_of

router = APIRouter()
SEARCH_LIMIT = 200


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 100_000 else 1


def customer_href(request: Request, external_id: str) -> str:
    """The customer page's address (any character of an external id is escaped)."""
    return f"{base_of(request)}/customers/{quote(external_id, safe='')}"


@router.get("/customers", include_in_schema=False)
async def customer_list(request: Request, viewer: SignedIn) -> Response:
    term = request.query_params.get("q", "").strip()[:SEARCH_LIMIT]
    listing = await customer_view.customer_list(
        runtime_of(request).lago, term, _page_number(request)
    )

    def page_query(number: int) -> str:
        return urlencode({**({"q": term} if term else {}), "page": number})

    return page(
        request,
        "customers.html",
        viewer,
        section="customers",
        term=term,
        listing=listing,
        page_query=page_query,
        href=lambda external_id: customer_href(request, external_id),
    )


@router.get("/customers/{external_id:path}", include_in_schema=False)
async def customer_detail(external_id: str, request: Request, viewer: SignedIn) -> Response:
    if not external_id.strip():
        return RedirectResponse(f"{base_of(request)}/customers", status_code=303)
    runtime = runtime_of(request)
    parts = request.app.state.parent.state.parts
    sources = Sources(runtime.database, runtime.lago, parts.meters, parts.catalog)
    view = await customer_view.customer_view(sources, external_id)
    if view is None:
        return page(
            request,
            "message.html",
            viewer,
            status=404,
            section="customers",
            heading="Customer not found",
            message=f"Lago knows no customer with the external id “{external_id}”.",
            back=f"{base_of(request)}/customers",
            refresh=None,
        )
    return page(
        request,
        "customer.html",
        viewer,
        section="customers",
        view=view,
        c=view.customer,
        units=units,
    )
