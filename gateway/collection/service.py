"""What follows an attempt's outcome: recorded forward only, then what it calls for.

    claim_attempt(invoice)   an attempt row, claimed and audited before Stripe is called
    record(row, outcome)     the outcome, moved forward only, with its dunning schedule and
                             audit in the same transaction; then its follow-ups
    follow_up(row)           after the commit: tell Lago, undo a second payment, ask the
                             customer (a payment link) when an off-session charge needs them

No Stripe or Lago call runs while a transaction is open. Follow-ups that call out run after
the commit; each is idempotent, and the collector finds and redoes any that a crash or an
outage interrupted. Asking the customer opens a payment link (``checkout``), whose own
outcomes are recorded here too: so the caller hands that step in (``charger.record`` does),
and this module never imports the pages it leads to.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.audit.service import record as audit
from gateway.collection import lago_sync, metrics, mode, refunds, states
from gateway.collection import store as rows
from gateway.collection.models import (
    CHECKOUT,
    FAILED,
    OFF_SESSION,
    REQUIRES_ACTION,
    SUCCEEDED,
    Collection,
)
from gateway.collection.notices import raise_failed
from gateway.errors import GatewayError
from gateway.integrations.lago.client import LagoError
from gateway.integrations.stripe.client import StripeError, StripeRejected
from gateway.logging import get_logger
from gateway.runtime import Runtime

log = get_logger(__name__)
LEASE_SECONDS = 60.0
# The channel (``Database.wake``) that makes the collector look at once (a new attempt, a
# retry brought forward).
DUE = "collection.due"


class AskCustomer(Protocol):
    """Cancel an off-session charge that needs the customer and open a payment link."""

    async def __call__(self, runtime: Runtime, row: Collection, *, actor: str) -> None: ...


def collectable(invoice: dict[str, Any]) -> bool:
    """A finalized invoice that is not paid yet."""
    return invoice.get("status") == "finalized" and invoice.get("payment_status") != SUCCEEDED


def metadata(row: Collection) -> dict[str, str]:
    """What ties a Stripe object to its Lago invoice and gateway attempt."""
    return {
        "lago_invoice_id": row.invoice_id,
        "lago_invoice_number": row.invoice_number or "",
        "gateway_collection_id": str(row.id),
        "gateway_attempt": str(row.attempt),
        "gateway_idempotency_key": row.idempotency_key,
    }


async def claim_attempt(
    session: AsyncSession,
    invoice: dict[str, Any],
    attempt: int,
    kind: str,
    actor: str,
    stripe_customer: str | None,
    reason: str | None = None,
) -> Collection | None:
    """Insert and audit a claimed attempt (the caller commits); None if taken already."""
    row = rows.new_attempt(
        invoice,
        attempt,
        kind=kind,
        actor=actor,
        lease_seconds=LEASE_SECONDS,
        stripe_customer_id=stripe_customer,
    )
    row.failure_code = reason
    claimed = await rows.claim(session, row)
    if claimed is not None:
        audit(
            session,
            actor=actor,
            action="collection.attempt.claimed",
            outcome="pending",
            target=claimed.invoice_id,
            detail={
                "attempt": attempt,
                "kind": kind,
                "amount_cents": claimed.amount_cents,
                "currency": claimed.currency,
            },
        )
    return claimed


async def record(
    runtime: Runtime,
    row_id: int | None,
    outcome: states.StripeOutcome,
    *,
    intent_id: str | None = None,
    actor: str,
    via: str = "stripe",
    ask_customer: AskCustomer | None,
) -> Collection | None:
    """Apply a Stripe outcome to an attempt (forward only), then run its follow-ups."""
    assert row_id is not None
    for _ in range(5):
        async with runtime.database.session() as session:
            row = await rows.by_id(session, row_id)
            if row is None:
                return None
            before = row.status
            target = _target(row, outcome)
            if target != before and not states.can_move(before, target):
                return row  # stale or duplicate: the state machine only moves forward
            fields = _fields(row, outcome, intent_id)
            if target == before and all(getattr(row, k) == v for k, v in fields.items()):
                return row  # a duplicate: nothing new
            conn = await session.connection()
            if not await rows.move(conn, row, target, **fields):
                continue  # moved by someone else meanwhile: read again
            if row.status != before:
                retry_days = runtime.settings.collection_retry_days
                await _after_move(retry_days, session, row, before, actor, via)
            await session.commit()
        if row.status != before:
            await follow_up(runtime, row, actor=actor, ask_customer=ask_customer)
        return row
    raise RuntimeError(f"collection {row_id}: could not apply the outcome (contention)")


def _target(row: Collection, outcome: states.StripeOutcome) -> str:
    # A declined card on Checkout leaves the page open for another try: not an outcome.
    if row.kind == CHECKOUT and outcome.status in (FAILED, REQUIRES_ACTION):
        return row.status
    return outcome.status


def _fields(
    row: Collection, outcome: states.StripeOutcome, intent_id: str | None
) -> dict[str, Any]:
    fields: dict[str, Any] = {"claimed_until": None}
    if intent_id and row.payment_intent_id != intent_id:
        fields["payment_intent_id"] = intent_id
    if outcome.payment_method_id:
        fields["payment_method_id"] = outcome.payment_method_id
    if outcome.failure_code or outcome.error:
        fields["failure_code"] = outcome.failure_code
        fields["last_error"] = (outcome.error or "")[:500] or None
    return fields


async def _after_move(
    retry_days: Sequence[float],
    session: AsyncSession,
    row: Collection,
    before: str,
    actor: str,
    via: str,
) -> None:
    """Audit the move; schedule dunning or end it, in the same transaction."""
    metrics.ATTEMPTS.labels(outcome=row.status).inc()
    audit(
        session,
        actor=actor,
        action=f"collection.attempt.{row.status}",
        outcome=row.status,
        target=row.invoice_id,
        target_ids=[row.payment_intent_id] if row.payment_intent_id else None,
        upstream="stripe",
        detail={
            "attempt": row.attempt,
            "kind": row.kind,
            "from": before,
            "via": via,
            "amount_cents": row.amount_cents,
            "currency": row.currency,
            "failure_code": row.failure_code,
        },
    )
    if row.status in states.PAID:
        await rows.end_dunning(await session.connection(), row.invoice_id)
    elif row.status in (FAILED, REQUIRES_ACTION) and row.kind == OFF_SESSION:
        await _schedule_retry(retry_days, session, row)


async def _schedule_retry(
    schedule: Sequence[float], session: AsyncSession, row: Collection
) -> None:
    attempts = await rows.for_invoice(session, row.invoice_id)
    if states.paid(attempts) is not None:
        return
    done = states.off_session_count(attempts)
    conn = await session.connection()
    if done <= len(schedule):
        due = time.time() + schedule[done - 1] * 86400.0
        await rows.set_next_retry(conn, row.id, due)
        set_committed_value(row, "next_retry_at", due)
        return
    await raise_failed(conn, session, row, attempts)


async def follow_up(
    runtime: Runtime, row: Collection, *, actor: str, ask_customer: AskCustomer | None
) -> None:
    """What a move calls out for, after its commit: tell Lago, ask the customer, undo a
    second payment. Failures are logged; the collector redoes them."""
    try:
        if row.status in states.PAID or row.status == FAILED:
            await lago_sync.push(runtime.database, runtime.lago, row.id)
        if row.status == SUCCEEDED:
            await refunds.refund_if_duplicate(runtime, row, actor=actor)
        if row.status == REQUIRES_ACTION and row.kind == OFF_SESSION and ask_customer is not None:
            await ask_customer(runtime, row, actor=actor)
    except (StripeError, LagoError, GatewayError) as exc:
        log.warning(
            "collection.follow_up_deferred",
            collection_id=row.id,
            error=type(exc).__name__,
            code=getattr(exc, "code", None),
        )
    runtime.database.wake(DUE).set()


async def refresh_from_stripe(
    runtime: Runtime, row: Collection, *, actor: str, via: str, ask_customer: AskCustomer | None
) -> Collection | None:
    """Apply the PaymentIntent's current state (the truth when an event could be stale)."""
    if row.payment_intent_id is None:
        return row
    try:
        intent = await mode.stripe_of(runtime).retrieve_payment_intent(row.payment_intent_id)
    except StripeRejected as exc:
        log.warning("collection.intent_missing", collection_id=row.id, code=exc.code)
        return row
    return await record(
        runtime,
        row.id,
        states.outcome_of_payment_intent(intent),
        intent_id=intent["id"],
        actor=actor,
        via=via,
        ask_customer=ask_customer,
    )
