"""The collector (worker job): drives what is due, and redoes what a crash interrupted.

Each pass: attempts and refunds claimed but never recorded (same idempotency key, so
Stripe hands back what it already made), dunning retries that are due, and outcomes Lago
has not been told. A row that fails is logged and left for the next pass; it never blocks
the others. With ``GATEWAY_COLLECTION=lago`` (or no Stripe key) the job only idles.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from gateway.collection import charger, dunning, lago_sync, mode, refunds, service
from gateway.collection import store as rows
from gateway.collection.models import Collection, CollectionRefund
from gateway.jobs import idle, log_failure
from gateway.logging import get_logger
from gateway.runtime import Runtime

log = get_logger(__name__)
PASS_SECONDS = 5.0
BATCH = 50
ACTOR = "collector"
T = TypeVar("T")


async def _each(what: str, items: Sequence[T], step: Callable[[T], Awaitable[None]]) -> int:
    done = 0
    for item in items:
        try:
            await step(item)
            done += 1
        except Exception as exc:
            log.warning(
                "collection.collector.step_failed",
                step=what,
                error=type(exc).__name__,
                item=getattr(item, "id", None),
            )
    return done


async def run_once(runtime: Runtime, now: float | None = None) -> dict[str, int]:
    """One pass; returns how many rows each step handled."""
    if not mode.enabled(runtime):
        return {}
    now = time.time() if now is None else now
    async with runtime.database.session() as session:
        stalled = await rows.stalled(session, now, BATCH)
        due = await rows.due_retries(session, now, BATCH)
    stalled_refunds = await refunds.stalled_refunds(runtime.database, now, BATCH)

    async def redrive(row: Collection) -> None:
        await charger.drive(runtime, row, actor=ACTOR)

    async def retry(row: Collection) -> None:
        await dunning.retry_due(runtime, row, actor=ACTOR)

    async def sync(row: Collection) -> None:
        await lago_sync.push(runtime.database, runtime.lago, row.id, actor=ACTOR)

    async def refund(row: CollectionRefund) -> None:
        await refunds.drive_refund(runtime, row, actor=ACTOR)

    counts = {
        "redriven": await _each("redrive", stalled, redrive),
        "refunds_redriven": await _each("refund", stalled_refunds, refund),
        "retried": await _each("retry", due, retry),
    }
    async with runtime.database.session() as session:
        unsynced = await rows.unsynced(session, BATCH)
    counts["lago_synced"] = await _each("sync", unsynced, sync)
    return counts


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job entry point: a pass every few seconds, or at once when woken."""
    wake = runtime.database.wake(service.DUE)
    while not stop.is_set():
        try:
            await run_once(runtime)
        except Exception as exc:
            log_failure(log, "collection.collector.pass_failed", exc)
        wake.take()
        await idle(stop, wake, PASS_SECONDS)
