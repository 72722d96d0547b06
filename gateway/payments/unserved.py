"""The customer and webhook calls the gateway answers with ``NotServed`` (405
``not_served_by_gateway``, Lago's own ``not_allowed_failure!`` status, so Lago's SDKs raise
their usual ``LagoApiError``), each naming what to use instead."""

from __future__ import annotations

from gateway.errors import NotServed


def portal_url(external_id: str) -> NotServed:
    """``GET /customers/{id}/portal_url``: Lago's portal is Lago's own site, kept private."""
    return NotServed(
        "Lago's customer portal is not reachable through the gateway; "
        "the gateway gives a Stripe billing portal link instead",
        f"POST /gateway/customers/{external_id}/portal",
    )


def checkout_url(external_id: str) -> NotServed:
    """``POST /customers/{id}/checkout_url``: the gateway, not Lago, holds the Stripe link."""
    return NotServed(
        "the gateway collects payments, so Lago has no payment provider to check out with; "
        "the gateway gives a Stripe Checkout link that saves a payment method instead",
        f"POST /gateway/customers/{external_id}/checkout",
    )


def webhook_public_key() -> NotServed:
    """``GET /webhooks/public_key`` and ``json_public_key``: only the gateway gets Lago's
    webhooks; subscribers verify the gateway's relay signatures."""
    return NotServed(
        "Lago's webhooks reach only the gateway; the webhooks you receive are the gateway's "
        "relay messages, signed with your endpoint's secret",
        "GET /gateway/endpoints/{endpoint_id}/secret",
    )
