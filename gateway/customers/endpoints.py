"""Lago's customer routes (``/api/v1/customers``), plus current usage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from gateway.billing.payloads import body_schema, read_root, required_query
from gateway.customers.linking import StripeLinks
from gateway.customers.schemas import CustomerCreate
from gateway.customers.service import Customers
from gateway.http.auth import BillingReader, BillingWriter
from gateway.http.dependencies import RuntimeDep
from gateway.http.pagination import LagoPage, query_pairs
from gateway.http.responses import OrjsonResponse
from gateway.payments import unserved
from gateway.runtime import Runtime

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])
Page = LagoPage
PerPage = Annotated[int | None, Query(ge=1, le=1000, description="Items per page (Lago: 100)")]


def customers(runtime: Runtime) -> Customers:
    """The customers service of this process (others, e.g. collection, call it too)."""
    links = StripeLinks(runtime.database, runtime.stripe)
    return Customers(runtime.database, runtime.lago, links, runtime.settings.collection)


@router.post("", openapi_extra=body_schema(CustomerCreate))
async def upsert_customer(
    request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Create or update a customer by ``external_id``, linking its Stripe customer."""
    params = read_root(await request.body(), "customer")
    return OrjsonResponse(await customers(runtime).upsert(params, principal.name))


@router.get("")
async def list_customers(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """Lago's customer list, with its filters and ``meta`` pagination."""
    query = query_pairs(request)
    return OrjsonResponse(await customers(runtime).index(query))


@router.get("/{external_id}")
async def get_customer(external_id: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One customer, as Lago has it."""
    return OrjsonResponse(await customers(runtime).get(external_id))


@router.delete("/{external_id}")
async def delete_customer(
    external_id: str, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Delete the customer in Lago (its subscriptions are terminated)."""
    return OrjsonResponse(await customers(runtime).delete(external_id, principal.name))


@router.get("/{external_id}/current_usage")
async def current_usage(
    external_id: str,
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    external_subscription_id: Annotated[
        str | None,
        Query(description="Optional when the customer has exactly one active subscription"),
    ] = None,
) -> Response:
    """Usage of the current billing period, priced by the plan."""
    query = query_pairs(request)
    return OrjsonResponse(await customers(runtime).current_usage(external_id, query))


@router.get("/{external_id}/past_usage")
async def past_usage(
    external_id: str,
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    external_subscription_id: Annotated[
        str | None, Query(description="Required: the subscription whose periods to list")
    ] = None,
    billable_metric_code: str | None = None,
    periods_count: int | None = None,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """Usage of the subscription's invoiced periods, newest first, as Lago has it."""
    query = query_pairs(request)
    required_query(query, "external_subscription_id")  # Lago's 422, without asking Lago
    return OrjsonResponse(await customers(runtime).listing(external_id, "past_usage", query))


# Lago's lists nested under a customer (config/routes.rb, ``scope module: :customers``),
# answered by Lago with their filters and ``meta`` pagination.
NESTED_LISTS = {
    "invoices": "The customer's invoices (Lago's invoice filters), newest first.",
    "payments": "The payments Lago recorded for the customer's invoices.",
    "payment_requests": "The customer's payment requests.",
    "subscriptions": "The customer's subscriptions (active only unless ``status[]`` says).",
    "wallets": "The customer's wallets.",
    "applied_coupons": "The coupons applied to the customer.",
}


def _nested_list(name: str, summary: str) -> None:
    async def endpoint(
        external_id: str,
        request: Request,
        runtime: RuntimeDep,
        _: BillingReader,
        page: Page = None,
        per_page: PerPage = None,
    ) -> Response:
        query = query_pairs(request)
        return OrjsonResponse(await customers(runtime).listing(external_id, name, query))

    router.add_api_route(
        f"/{{external_id}}/{name}",
        endpoint,
        methods=["GET"],
        name=f"list_customer_{name}",
        summary=f"List customer {name.replace('_', ' ')}",
        description=summary,
    )


for _name, _summary in NESTED_LISTS.items():
    _nested_list(_name, _summary)


@router.get("/{external_id}/payment_methods")
async def list_payment_methods(
    external_id: str,
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """Lago's list; when the gateway collects, the Stripe customer's saved methods in
    Lago's shape (managed in the Stripe portal: ``POST /gateway/customers/{id}/portal``)."""
    query = query_pairs(request)
    service = customers(runtime)
    return OrjsonResponse(await service.payment_methods(external_id, query, runtime.stripe))


@router.get("/{external_id}/portal_url", responses={405: {"description": "Not served"}})
async def portal_url(external_id: str, _: BillingReader) -> Response:
    """Not served: Lago's portal stays private; use ``POST /gateway/customers/{id}/portal``."""
    raise unserved.portal_url(external_id)


@router.post("/{external_id}/checkout_url", responses={405: {"description": "Not served"}})
async def checkout_url(external_id: str, runtime: RuntimeDep, principal: BillingWriter) -> Response:
    """Lago's checkout link when Lago collects; when the gateway collects, refused in favour
    of ``POST /gateway/customers/{id}/checkout``."""
    return OrjsonResponse(await customers(runtime).checkout_url(external_id, principal.name))
