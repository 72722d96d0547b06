"""Retention: handled inbound webhooks lose their raw body ``webhook_retention_days`` on.

The row itself stays, keys and all: ``(source, provider_event_id)`` and ``(source,
body_sha256)`` are what make a resent webhook a duplicate, and Lago signs HMAC webhooks
without a timestamp, so a body captured years ago still verifies. Deleting the row would let
it be stored and relayed again; clearing the body frees the space and keeps the keys.

Only ``handled`` rows whose receipt *and* handling are older than the cut-off are cleared
(the body becomes ``PRUNED_BODY``). Rows waiting to be handled (``received``) or given up
(``dead``, for someone to look at and replay) keep their body whatever their age, and
``handled`` is final: nothing reads the body of a handled row again.

The job walks the handled rows that still have a body (a partial index, migration 0009) by
primary-key ranges, one short transaction per range, and stops at the first range whose
oldest candidate is younger than the cut-off (ids grow with receipt time). Several workers
may run it at once: ``body <> ''`` in the UPDATE clears each body once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import entry, record_many
from gateway.db import Database
from gateway.jobs import retention
from gateway.logging import get_logger
from gateway.runtime import Runtime
from gateway.webhooks import store
from gateway.webhooks.processor import ACTOR

log = get_logger(__name__)
RANGE_IDS = 1_000
INTERVAL_SECONDS = 3_600.0
WEBHOOKS_PRUNED = Counter(
    "gateway_webhooks_pruned_total",
    "Handled inbound webhooks whose raw body the retention job cleared (keys kept)",
)


async def prune(
    database: Database,
    retention_days: float,
    *,
    now: float | None = None,
    range_ids: int = RANGE_IDS,
    stop: asyncio.Event | None = None,
) -> int:
    """Clear the body of handled webhooks older than the retention; returns how many."""
    cut_off = retention.cutoff(retention_days, now)

    async def step(conn: AsyncConnection, lo: int, hi: int) -> int:
        cleared = await store.clear_bodies(conn, lo, hi, cut_off)
        if cleared:
            await record_many(conn, [_audit(lo, hi, cleared, retention_days)])
        return cleared

    ranges = retention.Ranges(store.PRUNABLE_FIRST_ID, store.PRUNABLE_OLDEST, range_ids)
    cleared_total = await retention.walk(database, ranges, cut_off, step, WEBHOOKS_PRUNED, stop)
    if cleared_total:
        log.info("webhooks.retention.pruned", webhooks=cleared_total, retention_days=retention_days)
    return cleared_total


def _audit(lo: int, hi: int, cleared: int, retention_days: float) -> dict[str, Any]:
    return entry(
        actor=ACTOR,
        action="webhooks.retention.prune",
        outcome="body_cleared",
        detail={"webhooks": cleared, "id_from": lo, "id_to": hi, "retention_days": retention_days},
    )


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job: prune now, then once an hour."""
    days = runtime.settings.webhook_retention_days
    await retention.every(INTERVAL_SECONDS, stop, lambda: prune(runtime.database, days, stop=stop))
