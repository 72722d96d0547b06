"""Whether the gateway collects (``GATEWAY_COLLECTION=gateway`` with a Stripe key), and the
Stripe client it collects with."""

from __future__ import annotations

from gateway.config import CollectionMode
from gateway.errors import UpstreamUnavailable
from gateway.integrations.stripe.client import StripeClient
from gateway.runtime import Runtime


def enabled(runtime: Runtime) -> bool:
    """Gateway collection is on and Stripe is configured."""
    return runtime.settings.collection == CollectionMode.GATEWAY and runtime.stripe is not None


def stripe_of(runtime: Runtime) -> StripeClient:
    if runtime.stripe is None:
        raise UpstreamUnavailable("Stripe is not configured (GATEWAY_STRIPE_SECRET_KEY)")
    return runtime.stripe
