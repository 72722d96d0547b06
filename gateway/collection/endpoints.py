"""Links for customers: pay an invoice, save a card, manage payment methods."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.auth.dependencies import BillingWriter
from gateway.collection import checkout
from gateway.collection.schemas import (
    CheckoutRequest,
    CheckoutResponse,
    PaymentLinkResponse,
    PortalRequest,
    PortalResponse,
)
from gateway.config import CollectionMode
from gateway.errors import Conflict, from_stripe
from gateway.integrations.stripe.client import StripeError
from gateway.invoices.service import check_id
from gateway.runtime import Runtime, RuntimeDep

router = APIRouter(prefix="/gateway", tags=["collection"])


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
    success = checkout.return_url(runtime, body.success_url, "success_url")
    cancel = checkout.return_url(runtime, body.cancel_url or body.success_url, "cancel_url")
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
    target = checkout.return_url(runtime, (body or PortalRequest()).return_url, "return_url")
    try:
        link = await checkout.portal_link(
            runtime, external_id, return_to=target, actor=principal.name
        )
    except StripeError as exc:
        raise from_stripe(exc) from exc
    return PortalResponse.model_validate({"portal": link})
