"""Money going back: refunds for Lago credit notes, a second payment undone, disputes.

A refund is claimed as a ``collection_refunds`` row (unique on the credit note) before
Stripe is called with the key ``credit-note-{id}-refund``, so a credit note refunds at
most once, however often its webhook arrives or a crash interrupts.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.audit.service import record as audit
from gateway.collection import lago_sync, metrics, mode, states
from gateway.collection import store as rows
from gateway.collection.models import DISPUTED, PENDING, REFUNDED, Collection, CollectionRefund
from gateway.db import Database
from gateway.integrations.lago.client import LagoClient
from gateway.integrations.stripe.client import StripeClient, StripeRejected
from gateway.logging import get_logger
from gateway.runtime import Runtime

log = get_logger(__name__)
LEASE_SECONDS = 60.0
REFUND_RANK = {"pending": 0, "requires_action": 1, "succeeded": 2, "failed": 2, "canceled": 2}


async def refund_credit_note(runtime: Runtime, note: dict[str, Any], *, actor: str) -> None:
    """Refund the refund part of a Lago credit note on the invoice's Stripe payment."""
    amount = int(note.get("refund_amount_cents") or 0)
    if amount <= 0 or not mode.enabled(runtime):
        return
    async with runtime.database.session() as session:
        payment = states.paid(await rows.for_invoice(session, str(note.get("lago_invoice_id"))))
    if payment is None or payment.payment_intent_id is None:
        log.warning("collection.refund_without_payment", credit_note_id=note.get("lago_id"))
        return
    claimed = await _claim(
        runtime.database, payment, str(note["lago_id"]), note.get("number"), amount
    )
    if claimed is not None:
        await drive_refund(runtime, claimed, actor=actor)


async def _claim(
    database: Database, payment: Collection, key: str, number: str | None, amount: int
) -> CollectionRefund | None:
    now = time.time()
    row = CollectionRefund(
        credit_note_id=key,
        credit_note_number=number,
        invoice_id=payment.invoice_id,
        collection_id=payment.id,
        payment_intent_id=payment.payment_intent_id,
        amount_cents=amount,
        currency=payment.currency,
        status=PENDING,
        idempotency_key=f"credit-note-{key}-refund",
        claimed_until=now + LEASE_SECONDS,
        created_at=now,
        updated_at=now,
    )
    async with database.session() as session:
        claimed = await rows.claim_refund(session, row)  # None: a duplicate webhook
        await session.commit()
    return claimed


async def drive_refund(runtime: Runtime, row: CollectionRefund, *, actor: str) -> None:
    """Call Stripe for a claimed refund (again after a crash: same key, same refund)."""
    metadata = {"lago_credit_note_id": row.credit_note_id, "lago_invoice_id": row.invoice_id}
    try:
        refund = await mode.stripe_of(runtime).create_refund(
            payment_intent=str(row.payment_intent_id),
            amount=row.amount_cents,
            metadata=metadata,
            idempotency_key=row.idempotency_key,
        )
    except StripeRejected as exc:
        await apply_refund(
            runtime.database, runtime.lago, row.id, "failed", None, actor=actor, error=exc.code
        )
        return
    metrics.STRIPE_CALLS.labels(call="refund.create").inc()
    await apply_refund(
        runtime.database, runtime.lago, row.id, str(refund.get("status")), refund["id"], actor=actor
    )


async def apply_refund(
    database: Database,
    lago: LagoClient,
    row_id: int | None,
    status: str,
    stripe_refund_id: str | None,
    *,
    actor: str,
    error: str | None = None,
) -> None:
    """A refund's status from Stripe, forward only; Lago's credit note is told when final."""
    async with database.session() as session:
        row = await session.get(CollectionRefund, row_id)
        if row is None:
            return
        forward = REFUND_RANK.get(status, -1) > REFUND_RANK.get(row.status, 0)
        binds = bool(stripe_refund_id) and not row.stripe_refund_id
        if not forward and not binds:
            return  # stale or duplicate
        values: dict[str, Any] = {
            "status": status if forward else row.status,
            "updated_at": time.time(),
            "claimed_until": None,
        }
        if binds:
            values["stripe_refund_id"] = stripe_refund_id
        if error:
            values["last_error"] = error
        if not await rows.move_refund(await session.connection(), row, values):
            return  # moved by someone else meanwhile
        if forward:
            metrics.REFUNDS.labels(outcome=status).inc()
            audit(
                session,
                actor=actor,
                action=f"collection.refund.{status}",
                outcome=status,
                target=row.invoice_id,
                target_ids=[row.credit_note_id],
                upstream="stripe",
                detail={"amount_cents": row.amount_cents, "currency": row.currency, "error": error},
            )
        await session.commit()
    final = forward and status in ("succeeded", "failed")
    if final and not row.credit_note_id.startswith("duplicate-"):
        told = await lago_sync.credit_note_refunded(lago, row.credit_note_id, status)
        await _set_lago_status(database, row.id, status if told else "refused")


async def _set_lago_status(database: Database, row_id: int | None, value: str) -> None:
    async with database.session() as session:
        await rows.set_refund_lago_status(await session.connection(), row_id, value)
        await session.commit()


async def refund_if_duplicate(runtime: Runtime, row: Collection, *, actor: str) -> None:
    """A second payment on a paid invoice (should never happen): refund the later one."""
    async with runtime.database.session() as session:
        attempts = await rows.for_invoice(session, row.invoice_id)
    earlier = [a for a in attempts if a.status in states.PAID and a.attempt < row.attempt]
    if not earlier or row.payment_intent_id is None:
        return
    metrics.DUPLICATE_CHARGES.inc()
    log.error("collection.duplicate_charge", invoice_id=row.invoice_id, attempt=row.attempt)
    claimed = await _claim(
        runtime.database, row, f"duplicate-{row.payment_intent_id}", None, row.amount_cents
    )
    if claimed is not None:
        await drive_refund(runtime, claimed, actor=actor)


async def stalled_refunds(database: Database, now: float, limit: int) -> list[CollectionRefund]:
    """Claimed refunds whose Stripe call never got recorded."""
    async with database.session() as session:
        return await rows.stalled_refunds(session, now, limit)


async def by_stripe_refund(database: Database, refund_id: str) -> CollectionRefund | None:
    async with database.session() as session:
        return await rows.by_stripe_refund(session, refund_id)


async def refunded_amount(
    database: Database, stripe: StripeClient, intent_id: str, *, actor: str
) -> None:
    """The charge's refunded total, read from Stripe, onto the attempt (more only)."""
    async with database.session() as session:
        row = await rows.by_payment_intent(session, intent_id)
    if row is None:
        return
    intent = await stripe.retrieve_payment_intent(intent_id, expand=["latest_charge"])
    charge = intent.get("latest_charge")
    refunded = int(charge.get("amount_refunded") or 0) if isinstance(charge, dict) else 0
    async with database.session() as session:
        fresh = await rows.by_id(session, row.id or 0)
        if fresh is None or refunded <= fresh.refunded_amount_cents:
            return
        status = REFUNDED if refunded >= fresh.amount_cents else fresh.status
        conn = await session.connection()
        if await rows.move(conn, fresh, status, refunded_amount_cents=refunded):
            audit(
                session,
                actor=actor,
                action="collection.refunded",
                outcome=fresh.status,
                target=fresh.invoice_id,
                target_ids=[intent_id],
                upstream="stripe",
                detail={"refunded_amount_cents": refunded, "currency": fresh.currency},
            )
            await session.commit()


async def dispute_changed(runtime: Runtime, dispute_id: str, *, actor: str) -> None:
    """A dispute's current state (read from Stripe) onto its attempt; lost → Lago told."""
    dispute = await mode.stripe_of(runtime).retrieve_dispute(dispute_id)
    intent_id = dispute.get("payment_intent")
    if not intent_id:
        return
    async with runtime.database.session() as session:
        row = await rows.by_payment_intent(session, str(intent_id))
        if row is None:
            return
        before = row.dispute_status
        status = str(dispute.get("status"))
        target = DISPUTED if states.can_move(row.status, DISPUTED) else row.status
        conn = await session.connection()
        moved = await rows.move(conn, row, target, dispute_id=dispute_id, dispute_status=status)
        if moved and before != status:
            audit(
                session,
                actor=actor,
                action="collection.dispute",
                outcome=status,
                target=row.invoice_id,
                target_ids=[dispute_id],
                upstream="stripe",
                detail={"amount_cents": dispute.get("amount"), "reason": dispute.get("reason")},
            )
        await session.commit()
    if status == "lost" and before != "lost":
        await lago_sync.lose_dispute(runtime.database, runtime.lago, row.invoice_id, actor=actor)
