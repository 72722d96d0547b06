"""Retries: on the dunning schedule (``GATEWAY_COLLECTION_RETRY_DAYS``) or on request.

Before a new attempt the previous ones are made harmless: an open payment link is expired
(if the customer paid on it meanwhile, that payment is recorded and nothing is retried),
and the last charge is read back from Stripe (a lost ``succeeded`` webhook must not lead
to a second charge). The new attempt and the end of the old schedule share a transaction.
"""

from __future__ import annotations

from typing import Any

from gateway.collection import charger, mode, service, states
from gateway.collection import store as rows
from gateway.collection.checkout import close_link
from gateway.collection.models import CHECKOUT, FAILED, OFF_SESSION, REQUIRES_ACTION, Collection
from gateway.customers.linking import StripeLinks
from gateway.db import Database
from gateway.errors import Conflict, GatewayError, UpstreamRejected
from gateway.integrations.stripe.client import StripeClient
from gateway.invoices import service as invoices
from gateway.logging import get_logger
from gateway.runtime import Runtime

log = get_logger(__name__)


class PaymentNotAllowed(GatewayError):
    """The invoice cannot be collected now (Lago's 405 for ``retry_payment``)."""

    status = 405
    error = "Method Not Allowed"
    code = "invalid_status"


async def _ready(runtime: Runtime, invoice_id: str, *, actor: str) -> str | None:
    """Why no new attempt may start now (None: it may)."""
    async with runtime.database.session() as session:
        attempts = await rows.for_invoice(session, invoice_id)
    if states.paid(attempts) is not None:
        return "paid"
    current = states.in_flight(attempts)
    if current is not None and current.kind == CHECKOUT:
        if not await close_link(runtime, current, actor=actor):
            return "customer_paying"
    elif current is not None:
        return "in_flight"
    last = next((a for a in reversed(attempts) if a.kind == OFF_SESSION), None)
    if last is not None and last.status in (FAILED, REQUIRES_ACTION):
        fresh = await charger.refresh_from_stripe(runtime, last, actor=actor, via="pre_retry")
        if fresh is not None and fresh.status not in (FAILED, REQUIRES_ACTION, "canceled"):
            return "settled_meanwhile"
    return None


async def _claim_next(
    database: Database,
    stripe: StripeClient | None,
    invoice: dict[str, Any],
    *,
    actor: str,
    due_row: Collection | None,
) -> Collection | None:
    customer = invoice.get("customer") or {}
    stripe_customer = await StripeLinks(database, stripe).ensure(
        str(customer.get("external_id")), actor=actor, email=customer.get("email")
    )
    async with database.session() as session:
        conn = await session.connection()
        if due_row is not None:
            if not await rows.take_retry(conn, invoice["lago_id"], due_row):
                return None  # another process took this retry
        else:
            await rows.end_dunning(conn, invoice["lago_id"])
        attempt = await rows.next_attempt_number(session, invoice["lago_id"])
        claimed = await service.claim_attempt(
            session, invoice, attempt, OFF_SESSION, actor, stripe_customer
        )
        if claimed is None:
            await session.rollback()
            return None
        await session.commit()
    return claimed


async def _end_schedule(database: Database, row: Collection) -> None:
    async with database.session() as session:
        await rows.set_next_retry(await session.connection(), row.id, None)
        await session.commit()


async def retry_due(runtime: Runtime, row: Collection, *, actor: str = "collector") -> None:
    """The retry ``row`` scheduled: a new off-session attempt if the invoice is still owed."""
    try:
        invoice = await invoices.fetch(runtime.lago, row.invoice_id)
    except UpstreamRejected as exc:
        if exc.status != 404:
            raise
        await _end_schedule(runtime.database, row)
        return
    if not service.collectable(invoice) or states.amount_due(invoice) == 0:
        log.info("collection.retry_not_needed", invoice_id=row.invoice_id)
        await _end_schedule(runtime.database, row)
        return
    reason = await _ready(runtime, row.invoice_id, actor=actor)
    if reason is not None:
        log.info("collection.retry_skipped", invoice_id=row.invoice_id, reason=reason)
        if reason in ("paid", "settled_meanwhile"):
            await _end_schedule(runtime.database, row)
        return
    claimed = await _claim_next(runtime.database, runtime.stripe, invoice, actor=actor, due_row=row)
    if claimed is not None:
        await charger.drive_or_defer(runtime, claimed, actor=actor)


async def retry_now(runtime: Runtime, invoice_id: str, *, actor: str) -> Collection | None:
    """A retry asked for by a person or a service: a new attempt now (the schedule restarts
    from its result). 405 as Lago answers when the invoice is paid or being charged."""
    if not mode.enabled(runtime):
        raise Conflict(
            "gateway collection needs GATEWAY_STRIPE_SECRET_KEY", code="stripe_not_configured"
        )
    invoice = await invoices.fetch(runtime.lago, invoice_id)
    if not service.collectable(invoice) or states.amount_due(invoice) == 0:
        raise PaymentNotAllowed("the invoice is not finalized or already paid")
    async with runtime.database.session() as session:
        attempts = await rows.for_invoice(session, invoice_id)
    if not attempts:
        return await charger.start(runtime, invoice, actor=actor)
    reason = await _ready(runtime, invoice_id, actor=actor)
    if reason in ("paid", "settled_meanwhile"):
        raise PaymentNotAllowed("the invoice is paid")
    if reason is not None:
        raise PaymentNotAllowed(
            "a payment is being processed", code="payment_processor_is_currently_handling_payment"
        )
    claimed = await _claim_next(
        runtime.database, runtime.stripe, invoice, actor=actor, due_row=None
    )
    if claimed is None:
        raise PaymentNotAllowed(
            "a payment is being processed", code="payment_processor_is_currently_handling_payment"
        )
    await charger.drive_or_defer(runtime, claimed, actor=actor)
    return claimed
