"""Links for customers: pay an invoice, save a card, manage payment methods; and Lago's
``retry_payment`` route, which starts a Stripe attempt when the gateway collects."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gateway.collection import checkout, dunning, payment_urls
from gateway.collection.schemas import (
    CheckoutRequest,
    CheckoutResponse,
    PaymentLinkResponse,
    PortalRequest,
    PortalResponse,
)
from gateway.config import CollectionMode
from gateway.errors import Conflict, from_stripe
from gateway.http.auth import BillingWriter
from gateway.http.dependencies import RuntimeDep
from gateway.http.responses import OrjsonResponse
from gateway.integrations.stripe.client import StripeError
from gateway.invoices.endpoints import invoice_action, read_body
from gateway.invoices.service import check_id
from gateway.runtime import Runtime

router = APIRouter(prefix="/gateway", tags=["collection"])
# Lago's invoice route that collects: on Lago's surface, beside the other invoice routes.
payments_router = APIRouter(tags=["invoices"])


def _require_gateway_collection(runtime: Runtime) -> None:
    """409 unless the gateway collects (a configuration state, not an outage)."""
    if runtime.settings.collection != CollectionMode.GATEWAY:
        raise Conflict(
            "Lago collects payments (GATEWAY_COLLECTION=lago)", code="collection_by_lago"
        )
    if runtime.stripe is None:
        raise Conflict(
            "gateway collection needs GATEWAY_STRIPE_SECRET_KEY", code="stripe_not_configured"
        )


@router.post("/invoices/{lago_id}/payment-link", response_model=PaymentLinkResponse)
async def invoice_payment_link(
    lago_id: str, runtime: RuntimeDep, principal: BillingWriter
) -> PaymentLinkResponse:
    """A hosted Stripe Checkout link to pay the invoice (the open one if there is one)."""
    lago_id = check_id(lago_id)
    _require_gateway_collection(runtime)
    try:
        row = await checkout.open_link(runtime, lago_id, actor=principal.name)
    except StripeError as exc:
        raise from_stripe(exc) from exc
    return PaymentLinkResponse.model_validate(
        {
            "payment_link": {
                "invoice_id": row.invoice_id,
                "attempt": row.attempt,
                "url": row.payment_link,
                "expires_at": row.link_expires_at,
            }
        }
    )


@router.post("/customers/{external_id}/checkout", response_model=CheckoutResponse)
async def customer_checkout(
    external_id: str,
    runtime: RuntimeDep,
    principal: BillingWriter,
    body: CheckoutRequest | None = None,
) -> CheckoutResponse:
    """A Stripe Checkout link (setup mode): the card saved becomes the customer's default."""
    _require_gateway_collection(runtime)
    body = body or CheckoutRequest()
    fallback = runtime.settings.collection_return_url
    success = checkout.return_url(fallback, body.success_url, "success_url")
    cancel = checkout.return_url(fallback, body.cancel_url or body.success_url, "cancel_url")
    try:
        link = await checkout.setup_link(
            runtime, external_id, success_url=success, cancel_url=cancel, actor=principal.name
        )
    except StripeError as exc:
        raise from_stripe(exc) from exc
    return CheckoutResponse.model_validate({"checkout": link})


@router.post("/customers/{external_id}/portal", response_model=PortalResponse)
async def customer_portal(
    external_id: str,
    runtime: RuntimeDep,
    principal: BillingWriter,
    body: PortalRequest | None = None,
) -> PortalResponse:
    """A Stripe billing portal link for the customer."""
    _require_gateway_collection(runtime)
    fallback = runtime.settings.collection_return_url
    target = checkout.return_url(fallback, (body or PortalRequest()).return_url, "return_url")
    try:
        link = await checkout.portal_link(
            runtime, external_id, return_to=target, actor=principal.name
        )
    except StripeError as exc:
        raise from_stripe(exc) from exc
    return PortalResponse.model_validate({"portal": link})


@payments_router.post("/api/v1/invoices/{lago_id}/retry_payment")
async def retry_invoice_payment(
    lago_id: str, request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Collect again. With gateway collection this starts a new Stripe attempt now;
    with Lago collection Lago retries. 200 with no body, as Lago answers."""
    body = await read_body(request)
    if runtime.settings.collection == CollectionMode.GATEWAY:
        try:
            await dunning.retry_now(runtime, check_id(lago_id), actor=principal.name)
        except StripeError as exc:
            raise from_stripe(exc) from exc
        return Response(status_code=200)
    return await invoice_action(runtime, lago_id, "retry_payment", principal.name, body)


@payments_router.post("/api/v1/invoices/{lago_id}/payment_url")
async def invoice_payment_url(
    lago_id: str, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Lago's payment URL of an invoice. With gateway collection it is the gateway's Stripe
    payment link (422 ``missing_payment_provider`` without Stripe); with Lago collection,
    Lago's provider's URL."""
    if runtime.settings.collection != CollectionMode.GATEWAY:
        return await invoice_action(runtime, lago_id, "payment_url", principal.name, None)
    try:
        answer = await payment_urls.invoice_payment_details(
            runtime, check_id(lago_id), actor=principal.name
        )
    except StripeError as exc:
        raise from_stripe(exc) from exc
    return OrjsonResponse(answer)
