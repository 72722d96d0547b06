"""Reconciliation (worker job, every ``GATEWAY_COLLECTION_RECONCILE_SECONDS``, default 10 min).

Webhooks get lost: Lago tries three times in about 20 seconds, and any endpoint can be
down for longer. So the reconciler asks both sides directly:

- Lago: unpaid finalized invoices issued in the last days that the gateway never started
  collecting (their ``invoice.created`` never arrived) are collected now;
- Stripe: attempts still open locally are read back (PaymentIntent, Checkout Session) and
  settled as Stripe has them;
- attempts that needed the customer but got no payment link (an outage in between) get one.

What it repaired goes to the audit log (``collection.reconcile``) and to metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from gateway.audit.service import record as audit
from gateway.collection import charger, checkout, metrics, mode
from gateway.collection import store as rows
from gateway.collection.models import OFF_SESSION, Collection
from gateway.invoices import service as invoices
from gateway.invoices.schemas import InvoiceFilters
from gateway.jobs import log_failure
from gateway.logging import get_logger
from gateway.runtime import Runtime

log = get_logger(__name__)
ACTOR = "reconciler"
LOOKBACK_DAYS = 7
MAX_PAGES = 50
BATCH = 200


async def _lago_invoices(runtime: Runtime, now: float, repaired: Counter[str]) -> None:
    since = (datetime.fromtimestamp(now, UTC) - timedelta(days=LOOKBACK_DAYS)).date()
    filters = InvoiceFilters(
        statuses=("finalized",), payment_statuses=("pending",), issuing_date_from=since
    )
    found = [i async for i in invoices.iterate(runtime.lago, filters, max_pages=MAX_PAGES)]
    async with runtime.database.session() as session:
        known = await rows.invoices_with_attempts(session, [i["lago_id"] for i in found])
    for listed in found:
        if listed["lago_id"] in known:
            continue
        try:
            invoice = await invoices.fetch(runtime.lago, listed["lago_id"])
            await charger.start(runtime, invoice, actor=ACTOR)
        except Exception as exc:
            log.warning(
                "collection.reconcile.invoice_failed",
                invoice_id=listed["lago_id"],
                error=type(exc).__name__,
            )
            continue
        repaired["lago_invoice"] += 1


async def _settle(runtime: Runtime, row: Collection) -> bool:
    """Read an open attempt back from Stripe; True when that changed it."""
    if row.payment_intent_id is not None:
        fresh = await charger.refresh_from_stripe(runtime, row, actor=ACTOR, via="reconciler")
    elif row.checkout_session_id is not None:
        session = await mode.stripe_of(runtime).retrieve_checkout_session(row.checkout_session_id)
        fresh = await checkout.settle_session(runtime, session, actor=ACTOR, via="reconciler")
    else:
        return False
    return fresh is not None and fresh.status != row.status


async def _stripe_attempts(runtime: Runtime, now: float, repaired: Counter[str]) -> None:
    async with runtime.database.session() as session:
        open_rows = await rows.open_attempts(session, now - LOOKBACK_DAYS * 86400.0, BATCH)
    for row in open_rows:
        try:
            if await _settle(runtime, row):
                repaired["stripe_payment" if row.kind == OFF_SESSION else "payment_link"] += 1
        except Exception as exc:
            log.warning(
                "collection.reconcile.attempt_failed",
                collection_id=row.id,
                error=type(exc).__name__,
            )


async def _links_owed(runtime: Runtime, now: float, repaired: Counter[str]) -> None:
    async with runtime.database.session() as session:
        owed = await rows.awaiting_link(session, now - LOOKBACK_DAYS * 86400.0, BATCH)
    for row in owed:
        try:
            await checkout.ask_customer(runtime, row, actor=ACTOR)
        except Exception as exc:
            log.warning(
                "collection.reconcile.link_failed", collection_id=row.id, error=type(exc).__name__
            )
            continue
        repaired["payment_link_opened"] += 1


async def run_once(runtime: Runtime, now: float | None = None) -> dict[str, int]:
    """One reconciliation; returns what it repaired, by kind."""
    if not mode.enabled(runtime):
        return {}
    now = time.time() if now is None else now
    repaired: Counter[str] = Counter()
    await _lago_invoices(runtime, now, repaired)
    await _stripe_attempts(runtime, now, repaired)
    await _links_owed(runtime, now, repaired)
    for kind, count in repaired.items():
        metrics.RECONCILER_REPAIRS.labels(kind=kind).inc(count)
    if repaired:
        log.info("collection.reconcile.repaired", **repaired)
        async with runtime.database.session() as session:
            audit(
                session,
                actor=ACTOR,
                action="collection.reconcile",
                outcome="repaired",
                detail=dict(repaired),
            )
            await session.commit()
    return dict(repaired)


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job entry point."""
    while not stop.is_set():
        try:
            await run_once(runtime)
        except Exception as exc:
            log_failure(log, "collection.reconcile.failed", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                stop.wait(), timeout=runtime.settings.collection_reconcile_seconds
            )
