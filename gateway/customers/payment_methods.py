"""``GET /api/v1/customers/{id}/payment_methods`` when the gateway collects: the Stripe
customer's saved payment methods, in Lago's shape.

With ``GATEWAY_COLLECTION=gateway`` Lago has no payment provider and so no payment method;
the cards collection charges are on the linked Stripe customer. Lago is asked first (an
unknown customer stays Lago's ``404 customer_not_found``); for a linked customer the list is
then Stripe's, newest first, as Lago's ``PaymentMethodSerializer`` renders one:

    lago_id                uuid5 of the Stripe id (stable; no Lago record has it)
    is_default             the method collection charges (Stripe's invoice default, else
                           the newest card)
    payment_provider_type  "stripe"; ``payment_provider_code``/``_name`` null (no Lago provider)
    provider_method_id     Stripe's ``pm_…`` id
    created_at             Stripe's ``created``

Lago's ``destroy`` and ``set_as_default`` are not served: the customer manages cards in the
Stripe billing portal (``POST /gateway/customers/{id}/portal``).
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from gateway.billing.passthrough import Params
from gateway.customers import store
from gateway.db import Database
from gateway.errors import from_stripe
from gateway.integrations.stripe.client import StripeClient, StripeError

METHOD_ID_NAMESPACE = uuid.UUID("0b6c3c1e-8f4a-5d0e-9b7a-2f3c8d9e1a4b")
PER_PAGE = 100


def lago_method(method: dict[str, Any], default_id: str | None) -> dict[str, Any]:
    """One Stripe PaymentMethod as Lago's ``payment_method`` object."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(method["created"])))
    return {
        "lago_id": str(uuid.uuid5(METHOD_ID_NAMESPACE, method["id"])),
        "is_default": method["id"] == default_id,
        "payment_provider_code": None,
        "payment_provider_name": None,
        "payment_provider_type": "stripe",
        "provider_method_id": method["id"],
        "created_at": created,
    }


async def stripe_methods(
    database: Database, stripe: StripeClient, external_id: str
) -> list[dict[str, Any]] | None:
    """The linked Stripe customer's methods in Lago's shape; None when there is no link."""
    link = await store.find(database, external_id)
    if link is None or not link.stripe_customer_id:
        return None
    try:
        methods = await stripe.list_payment_methods(link.stripe_customer_id)
        default = await stripe.default_payment_method(link.stripe_customer_id) if methods else None
    except StripeError as exc:
        raise from_stripe(exc) from exc
    return [lago_method(method, default) for method in methods]


def page(methods: list[dict[str, Any]], params: Params) -> dict[str, Any]:
    """One page of ``methods`` with Lago's ``meta`` (``page``, ``per_page`` as Lago reads them)."""
    number = _positive(params, "page", 1)
    size = _positive(params, "per_page", PER_PAGE)
    total = len(methods)
    pages = math.ceil(total / size)
    return {
        "payment_methods": methods[(number - 1) * size : number * size],
        "meta": {
            "current_page": number,
            "next_page": number + 1 if number < pages else None,
            "prev_page": number - 1 if number > 1 else None,
            "total_pages": pages,
            "total_count": total,
        },
    }


def _positive(params: Params, name: str, default: int) -> int:
    value = next((v for k, v in params if k == name), "")
    return int(value) if value.isdigit() and int(value) > 0 else default
