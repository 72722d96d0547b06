"""The state machine of an attempt, and what Stripe's answers and Lago's invoices mean for it.

Statuses only move forward (``RANK``): a duplicate or late Stripe event that would move
an attempt back is ignored.

    pending ─┬─▶ requires_action ─▶ processing ─┬─▶ failed ─┐
             │                                  ├─▶ canceled│
             └──────────────────────────────────┴─▶ succeeded ◀┘─▶ disputed ─▶ refunded
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.collection.models import (
    CANCELED,
    DISPUTED,
    FAILED,
    IN_FLIGHT,
    OFF_SESSION,
    PENDING,
    PROCESSING,
    REFUNDED,
    REQUIRES_ACTION,
    SUCCEEDED,
    Collection,
)

RANK = {
    PENDING: 0,
    REQUIRES_ACTION: 1,
    PROCESSING: 2,
    FAILED: 3,
    CANCELED: 3,
    SUCCEEDED: 4,
    DISPUTED: 5,
    REFUNDED: 6,
}
PAID = (SUCCEEDED, DISPUTED, REFUNDED)


def can_move(current: str, new: str) -> bool:
    """Whether ``current`` → ``new`` is forward (equal is not a move)."""
    return RANK[new] > RANK[current]


def idempotency_key(invoice_id: str, attempt: int) -> str:
    """Stripe's idempotency key of one attempt: a crash-then-retry reuses Stripe's object."""
    return f"invoice-{invoice_id}-attempt-{attempt}"


@dataclass(frozen=True)
class StripeOutcome:
    """What a PaymentIntent (or a Stripe error) means for an attempt."""

    status: str
    failure_code: str | None = None
    error: str | None = None
    payment_method_id: str | None = None


def outcome_of_payment_intent(intent: dict[str, Any]) -> StripeOutcome:
    """Map a Stripe PaymentIntent to an attempt status."""
    stripe_status = intent.get("status")
    error = intent.get("last_payment_error") or {}
    method = intent.get("payment_method")
    method_id = method.get("id") if isinstance(method, dict) else method
    code = error.get("decline_code") or error.get("code")
    status = {
        "succeeded": SUCCEEDED,
        "processing": PROCESSING,
        "requires_capture": PROCESSING,
        "requires_action": REQUIRES_ACTION,
        "canceled": CANCELED,
    }.get(str(stripe_status))
    if status is None:  # requires_payment_method / requires_confirmation
        status = FAILED if error else PENDING
    if status == FAILED and code == "authentication_required":
        status = REQUIRES_ACTION
    return StripeOutcome(status, code, error.get("message"), method_id)


def in_flight(rows: list[Collection]) -> Collection | None:
    """The attempt Stripe may still be working on (at most one, by a unique index)."""
    return next((row for row in rows if row.status in IN_FLIGHT), None)


def paid(rows: list[Collection]) -> Collection | None:
    return next((row for row in rows if row.status in PAID), None)


def off_session_count(rows: list[Collection]) -> int:
    return sum(1 for row in rows if row.kind == OFF_SESSION)


def amount_due(invoice: dict[str, Any]) -> int:
    """What is left to pay on a Lago invoice, in minor units."""
    due = invoice.get("total_due_amount_cents")
    if due is None:
        due = invoice.get("total_amount_cents") or 0
    return max(int(due), 0)
