"""Claim, then call: each off-session charge is committed as a row before Stripe is called.

    start(invoice)        the first attempt on a finalized Lago invoice (zero: marked paid)
    drive(row)            the Stripe call of a claimed attempt, with the attempt's
                          idempotency key: run again after a crash, it gets the same
                          PaymentIntent back instead of charging twice
    record(row, intent)   the outcome, moved forward only, with its follow-ups; an
                          off-session charge that needs the customer gets a payment link

No Stripe or Lago call runs while a transaction is open (``service`` records, then calls out).
"""

from __future__ import annotations

import time
from typing import Any

from gateway.collection import checkout, lago_sync, metrics, mode, service, states
from gateway.collection import store as rows
from gateway.collection.models import CHECKOUT, FAILED, OFF_SESSION, REQUIRES_ACTION, Collection
from gateway.customers.linking import StripeLinks
from gateway.integrations.stripe.client import StripeClient, StripeError, StripeRejected
from gateway.logging import get_logger
from gateway.runtime import Runtime

log = get_logger(__name__)
# Stripe keeps idempotency keys for 24 hours; past that, a stalled attempt is looked up first.
IDEMPOTENCY_WINDOW_SECONDS = 23 * 3600.0


async def start(runtime: Runtime, invoice: dict[str, Any], *, actor: str) -> Collection | None:
    """Begin collecting ``invoice`` (Lago's wire form): idempotent, first attempt only."""
    if not mode.enabled(runtime) or not service.collectable(invoice):
        return None
    if states.amount_due(invoice) == 0:
        await lago_sync.mark_zero_invoice_paid(runtime.database, runtime.lago, invoice, actor=actor)
        return None
    customer = invoice.get("customer") or {}
    stripe_customer = await StripeLinks(runtime.database, runtime.stripe).ensure(
        str(customer.get("external_id")), actor=actor, email=customer.get("email")
    )
    async with runtime.database.session() as session:
        if await rows.for_invoice(session, invoice["lago_id"]):
            return None  # already being collected (a duplicate webhook, the reconciler)
        claimed = await service.claim_attempt(
            session, invoice, 1, OFF_SESSION, actor, stripe_customer
        )
        await session.commit()
    if claimed is not None:
        await drive_or_defer(runtime, claimed, actor=actor)
    return claimed


async def drive_or_defer(runtime: Runtime, row: Collection, *, actor: str) -> None:
    """Drive a claimed attempt now; if Stripe is unreachable, the collector drives it again
    (same idempotency key) once its claim lapses."""
    try:
        await drive(runtime, row, actor=actor)
    except StripeError as exc:
        log.warning("collection.drive_deferred", collection_id=row.id, error=type(exc).__name__)


async def drive(runtime: Runtime, row: Collection, *, actor: str = "collector") -> None:
    """Make the Stripe call of a claimed attempt and record what Stripe answered."""
    if row.kind == CHECKOUT:
        await checkout.drive_payment_link(
            runtime.database,
            mode.stripe_of(runtime),
            row,
            actor=actor,
            fallback_url=runtime.settings.collection_return_url,
        )
        return
    stripe = mode.stripe_of(runtime)
    method = row.payment_method_id
    if method is None and row.stripe_customer_id:
        method = await stripe.default_payment_method(row.stripe_customer_id)
    if method is None or row.stripe_customer_id is None:
        await record(
            runtime, row.id, states.StripeOutcome(REQUIRES_ACTION, "no_payment_method"), actor=actor
        )
        return
    try:
        intent = await _adopt_late(stripe, row) or await stripe.create_payment_intent(
            _intent_params(row, method), idempotency_key=row.idempotency_key
        )
    except StripeRejected as exc:
        # Refused outright (no PaymentIntent): a failed attempt, dunning goes on.
        outcome = states.StripeOutcome(FAILED, exc.code or exc.error_type, exc.message)
        await record(runtime, row.id, outcome, actor=actor)
        return
    metrics.STRIPE_CALLS.labels(call="payment_intent.create").inc()
    await record(
        runtime,
        row.id,
        states.outcome_of_payment_intent(intent),
        intent_id=intent["id"],
        actor=actor,
    )


def _intent_params(row: Collection, method: str) -> dict[str, Any]:
    return {
        "amount": row.amount_cents,
        "currency": row.currency.lower(),
        "customer": row.stripe_customer_id,
        "payment_method": method,
        "off_session": True,
        "confirm": True,
        "description": f"Invoice {row.invoice_number or row.invoice_id}",
        "metadata": service.metadata(row),
    }


async def _adopt_late(stripe: StripeClient, row: Collection) -> dict[str, Any] | None:
    """A PaymentIntent created for this attempt longer ago than Stripe remembers keys."""
    if time.time() - row.created_at < IDEMPOTENCY_WINDOW_SECONDS or not row.stripe_customer_id:
        return None
    intents = await stripe.list_payment_intents(
        customer=row.stripe_customer_id, created_gte=int(row.created_at) - 60
    )
    for intent in intents:
        if (intent.get("metadata") or {}).get("gateway_idempotency_key") == row.idempotency_key:
            return intent
    return None


async def record(
    runtime: Runtime,
    row_id: int | None,
    outcome: states.StripeOutcome,
    *,
    intent_id: str | None = None,
    actor: str,
    via: str = "stripe",
) -> Collection | None:
    """Apply a Stripe outcome to an attempt (forward only), then run its follow-ups: an
    off-session charge that needs the customer is cancelled and a payment link opened."""
    return await service.record(
        runtime,
        row_id,
        outcome,
        intent_id=intent_id,
        actor=actor,
        via=via,
        ask_customer=checkout.ask_customer,
    )


async def refresh_from_stripe(
    runtime: Runtime, row: Collection, *, actor: str, via: str
) -> Collection | None:
    """Apply the PaymentIntent's current state (the truth when an event could be stale)."""
    return await service.refresh_from_stripe(
        runtime, row, actor=actor, via=via, ask_customer=checkout.ask_customer
    )
