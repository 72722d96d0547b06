"""What the gateway checks in subscription bodies before Lago sees them.

Everything not checked here passes through to Lago as sent.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from gateway.billing.payloads import Id, LagoInput


class SubscriptionInput(LagoInput):
    external_customer_id: Id
    plan_code: Id
    external_id: Id
    name: str | None = None
    billing_time: Literal["calendar", "anniversary"] | None = None
    subscription_at: str | None = None
    ending_at: str | None = None


class SubscriptionCreate(BaseModel):
    """``POST /api/v1/subscriptions``: a new plan on an existing external id is a plan change."""

    subscription: SubscriptionInput


class SubscriptionChanges(LagoInput):
    name: str | None = None
    ending_at: str | None = None
    subscription_at: str | None = None
    purchase_order_number: str | None = None


# The fields a ``null`` sets in Lago (Subscriptions::UpdateService assigns each one whenever
# the key is sent; SubscriptionUpdateInput declares them nullable): ``ending_at: null``
# undoes a scheduled end, ``name``/``purchase_order_number: null`` clear them.
NULLABLE_ON_UPDATE = frozenset({"ending_at", "name", "purchase_order_number"})


class SubscriptionUpdate(BaseModel):
    """``PUT /api/v1/subscriptions/{external_id}``."""

    subscription: SubscriptionChanges


TERMINATION_QUERY = {
    "status": ("active", "pending"),
    "on_termination_invoice": ("generate", "skip"),
    "on_termination_credit_note": ("credit", "refund", "skip"),
}
