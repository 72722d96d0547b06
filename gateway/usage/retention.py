"""Retention: forwarded events leave the outbox ``outbox_retention_days`` after Lago took them.

Only ``forwarded`` rows are deleted; pending rows (not yet in Lago) and dead rows (waiting for
someone to look at them) stay whatever their age. The job walks the table by primary-key
ranges, one short transaction per range, so it never holds many locks nor a long snapshot, and
stops at the first range whose oldest event is younger than the cut-off (ids grow with
acceptance time). Several workers may run it at once: a DELETE of rows already gone is a no-op.
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
from gateway.usage import store
from gateway.usage.forwarder import ACTOR

log = get_logger(__name__)
RANGE_IDS = 5_000
INTERVAL_SECONDS = 3_600.0
EVENTS_PRUNED = Counter(
    "gateway_usage_events_pruned_total", "Forwarded usage events deleted by the retention job"
)


async def prune(
    database: Database,
    retention_days: float,
    *,
    now: float | None = None,
    range_ids: int = RANGE_IDS,
    stop: asyncio.Event | None = None,
) -> int:
    """Delete forwarded events older than the retention; returns how many went."""
    cut_off = retention.cutoff(retention_days, now)

    async def step(conn: AsyncConnection, lo: int, hi: int) -> int:
        deleted = await store.delete_forwarded(conn, lo, hi, cut_off)
        if deleted:
            await record_many(conn, [_audit(lo, hi, deleted, retention_days)])
        return deleted

    ranges = retention.Ranges(store.FIRST_ID, store.OLDEST_IN_RANGE, range_ids)
    deleted_total = await retention.walk(database, ranges, cut_off, step, EVENTS_PRUNED, stop)
    if deleted_total:
        log.info("usage.retention.pruned", events=deleted_total, retention_days=retention_days)
    return deleted_total


def _audit(lo: int, hi: int, deleted: int, retention_days: float) -> dict[str, Any]:
    return entry(
        actor=ACTOR,
        action="usage.retention.prune",
        outcome="deleted",
        detail={"events": deleted, "id_from": lo, "id_to": hi, "retention_days": retention_days},
    )


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job: prune now, then once an hour."""
    days = runtime.settings.outbox_retention_days
    await retention.every(INTERVAL_SECONDS, stop, lambda: prune(runtime.database, days, stop=stop))
