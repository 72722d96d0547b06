"""Lago's routes nested under a customer (config/routes.rb, ``scope module: :customers``).

app/controllers/api/v1/customers/{invoices,payment_requests,subscriptions}_controller.rb
(each finds the customer first, Customers::BaseController: 404 ``customer_not_found``),
customers/usage_controller.rb#past and customers_controller.rb#checkout_url. The customer's
payments and payment methods are in ``payments``; its wallets and applied coupons in
``app._billing_routes``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import subscriptions, usage
from .customers import get_customer
from .errors import ValidationFailed
from .http import ok, paginate, query_list, state_of
from .invoicing import customer_invoices, serialize
from .state import Record

# Invoice::VISIBLE_STATUS: the invoices the API shows.
_VISIBLE = ("draft", "finalized", "voided", "failed", "pending")


def _invoice_matches(invoice: Record, request: Request) -> bool:
    """InvoicesQuery's status, payment status, currency and type filters."""
    query = request.query_params
    statuses = query_list(request, "statuses") or query_list(request, "status")
    paid = query_list(request, "payment_statuses") or query_list(request, "payment_status")
    return (
        (not statuses or invoice["status"] in statuses)
        and (not paid or invoice["payment_status"] in paid)
        and query.get("currency", invoice["currency"]) == invoice["currency"]
        and query.get("invoice_type", invoice["invoice_type"]) == invoice["invoice_type"]
    )


async def invoices(request: Request) -> Response:
    """GET /customers/{external_customer_id}/invoices: newest first (InvoiceIndex)."""
    state = state_of(request)
    customer = get_customer(state, request.path_params["external_customer_id"])
    found = [
        serialize(state, invoice, listed=True)
        for invoice in reversed(customer_invoices(state, customer["external_id"]))
        if invoice["status"] in _VISIBLE and _invoice_matches(invoice, request)
    ]
    return paginate(request, "invoices", found)


async def customer_subscriptions(request: Request) -> Response:
    """GET /customers/{external_customer_id}/subscriptions (SubscriptionIndex)."""
    state = state_of(request)
    customer = get_customer(state, request.path_params["external_customer_id"])
    return subscriptions.listed(state, request, customer["external_id"])


async def payment_requests(request: Request) -> Response:
    """GET /customers/{external_customer_id}/payment_requests: the emulator makes no
    payment requests (dunning), so a known customer has none."""
    get_customer(state_of(request), request.path_params["external_customer_id"])
    return paginate(request, "payment_requests", [])


async def checkout_url(request: Request) -> Response:
    """POST /customers/{external_customer_id}/checkout_url (Customers::
    GenerateCheckoutUrlService): 404 for an unknown customer, 422 ``no_linked_payment_provider``
    without a provider; else the provider's checkout link (CustomerCheckoutSerializer)."""
    customer = get_customer(state_of(request), request.path_params["external_customer_id"])
    billing = customer.get("billing_configuration") or {}
    provider = billing.get("payment_provider")
    if not provider:
        raise ValidationFailed({"base": ["no_linked_payment_provider"]})
    answer = {
        "lago_customer_id": customer["lago_id"],
        "external_customer_id": customer["external_id"],
        "payment_provider": provider,
        "payment_provider_code": billing.get("payment_provider_code"),
        "checkout_url": f"https://checkout.{provider}.test/setup/{customer['lago_id']}",
    }
    return ok({"customer": {k: v for k, v in answer.items() if v is not None}})


def routes() -> list[BaseRoute]:
    """The customer-nested routes, mounted under ``/api/v1``."""
    customer = "/customers/{external_customer_id}"
    return [
        Route(f"{customer}/invoices", invoices, methods=["GET"]),
        Route(f"{customer}/subscriptions", customer_subscriptions, methods=["GET"]),
        Route(f"{customer}/payment_requests", payment_requests, methods=["GET"]),
        Route(f"{customer}/past_usage", usage.past, methods=["GET"]),
        Route(f"{customer}/checkout_url", checkout_url, methods=["POST"]),
    ]
