"""Telling Lago what Stripe said: ``PUT /invoices/{id}`` payment status, after the commit.

``collections.lago_status`` remembers what Lago was told, so the collector can find and
redo a write that Lago missed (down, slow); a ``failed`` is never written over a payment.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.audit.service import record as audit
from gateway.collection import metrics, states
from gateway.collection import store as rows
from gateway.collection.models import FAILED, SUCCEEDED, Collection
from gateway.db import Database
from gateway.integrations.lago.client import LagoApiError, LagoClient, LagoError
from gateway.logging import get_logger

log = get_logger(__name__)
SKIPPED = "skipped"
REFUSED = "refused"


def wanted(row: Collection) -> str | None:
    """The Lago payment status this attempt calls for, if any."""
    if row.status in states.PAID:
        return SUCCEEDED
    if row.status == FAILED:
        return FAILED
    return None


async def push(
    database: Database, lago: LagoClient, row_id: int | None, *, actor: str = "collector"
) -> None:
    """Write the attempt's outcome to Lago, once; LagoError propagates when Lago is down."""
    assert row_id is not None
    async with database.session() as session:
        row = await rows.by_id(session, row_id)
        if row is None or (status := wanted(row)) is None or row.lago_status == status:
            return
        if status == FAILED and states.paid(await rows.for_invoice(session, row.invoice_id)):
            await _mark(database, row, SKIPPED, actor, None)
            return
    started = time.perf_counter()
    try:
        await lago.call(
            "PUT", f"/invoices/{row.invoice_id}", json={"invoice": {"payment_status": status}}
        )
    except LagoApiError as exc:
        if exc.retryable:
            metrics.LAGO_SYNC_FAILURES.inc()
            raise
        # Voided or deleted meanwhile: Lago will never take it; say so and stop asking.
        log.warning("collection.lago_sync.refused", invoice_id=row.invoice_id, status=exc.status)
        await _mark(database, row, REFUSED, actor, exc.status, started)
        return
    except LagoError:
        metrics.LAGO_SYNC_FAILURES.inc()
        raise
    metrics.LAGO_SYNCED.labels(payment_status=status).inc()
    await _mark(database, row, status, actor, 200, started)


async def _mark(
    database: Database,
    row: Collection,
    lago_status: str,
    actor: str,
    http_status: int | None,
    started: float | None = None,
) -> None:
    async with database.session() as session:
        await rows.set_lago_status(await session.connection(), row.id, lago_status)
        audit(
            session,
            actor=actor,
            action="collection.lago_sync",
            outcome=lago_status,
            target=row.invoice_id,
            upstream="lago" if http_status is not None else None,
            status=http_status,
            latency_ms=None if started is None else (time.perf_counter() - started) * 1000,
            detail={"attempt": row.attempt, "payment_status": wanted(row)},
        )
        await session.commit()


async def mark_zero_invoice_paid(
    database: Database, lago: LagoClient, invoice: dict[str, Any], *, actor: str
) -> None:
    """Nothing to charge: the invoice is paid, without Stripe."""
    if invoice.get("payment_status") == SUCCEEDED:
        return
    started = time.perf_counter()
    await lago.call(
        "PUT", f"/invoices/{invoice['lago_id']}", json={"invoice": {"payment_status": SUCCEEDED}}
    )
    async with database.session() as session:
        audit(
            session,
            actor=actor,
            action="collection.zero_amount_paid",
            outcome=SUCCEEDED,
            target=invoice["lago_id"],
            upstream="lago",
            status=200,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        await session.commit()


async def lose_dispute(
    database: Database, lago: LagoClient, invoice_id: str, *, actor: str
) -> None:
    """A lost dispute: Lago marks the invoice's dispute lost (``POST …/lose_dispute``)."""
    started = time.perf_counter()
    status, outcome = 200, "success"
    try:
        await lago.call("POST", f"/invoices/{invoice_id}/lose_dispute")
    except LagoApiError as exc:
        if exc.retryable:
            raise
        status, outcome = exc.status, "rejected"
    async with database.session() as session:
        audit(
            session,
            actor=actor,
            action="collection.dispute_lost",
            outcome=outcome,
            target=invoice_id,
            upstream="lago",
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        await session.commit()


async def credit_note_refunded(lago: LagoClient, credit_note_id: str, refund_status: str) -> bool:
    """``PUT /credit_notes/{id}`` refund status; False when Lago refused it."""
    try:
        await lago.call(
            "PUT",
            f"/credit_notes/{credit_note_id}",
            json={"credit_note": {"refund_status": refund_status}},
        )
    except LagoApiError as exc:
        if exc.retryable:
            raise
        log.warning(
            "collection.refund_status_refused", credit_note_id=credit_note_id, status=exc.status
        )
        return False
    return True
