"""Retention: forwarded events leave the outbox ``outbox_retention_days`` after Lago took them.

Only ``forwarded`` rows are deleted; pending rows (not yet in Lago) and dead rows (waiting for
someone to look at them) stay whatever their age. The job walks the table by primary-key
ranges, one short transaction per range, so it never holds many locks nor a long snapshot, and
stops at the first range whose oldest event is younger than the cut-off (ids grow with
acceptance time). Several workers may run it at once: a DELETE of rows already gone is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from prometheus_client import Counter
from sqlalchemy import text

from gateway.audit.service import entry, record_many
from gateway.db import Database
from gateway.logging import get_logger
from gateway.runtime import Runtime
from gateway.usage.forwarder import ACTOR
from gateway.usage.models import FORWARDED

log = get_logger(__name__)
RANGE_IDS = 5_000
INTERVAL_SECONDS = 3_600.0
EVENTS_PRUNED = Counter(
    "gateway_usage_events_pruned_total", "Forwarded usage events deleted by the retention job"
)

_FIRST_ID = text("SELECT min(id) FROM usage_events WHERE id >= :lo")
_OLDEST = text("SELECT min(accepted_at) FROM usage_events WHERE id >= :lo AND id < :hi")
_DELETE = text(
    "DELETE FROM usage_events WHERE id >= :lo AND id < :hi "
    "AND status = :forwarded AND forwarded_at < :cutoff"
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
    cutoff = (time.time() if now is None else now) - retention_days * 86_400
    deleted_total = 0
    lo = await _next_id(database, 0)
    while lo is not None and not (stop is not None and stop.is_set()):
        hi = lo + range_ids
        async with database.engine.begin() as conn:
            oldest = (await conn.execute(_OLDEST, {"lo": lo, "hi": hi})).scalar()
            if oldest is not None and float(oldest) >= cutoff:
                break
            result = await conn.execute(
                _DELETE, {"lo": lo, "hi": hi, "forwarded": FORWARDED, "cutoff": cutoff}
            )
            deleted = max(result.rowcount or 0, 0)
            if deleted:
                await record_many(conn, [_audit(lo, hi, deleted, retention_days)])
        deleted_total += deleted
        EVENTS_PRUNED.inc(deleted)
        lo = await _next_id(database, hi)
        await asyncio.sleep(0)  # let the API and the forwarder in between ranges
    if deleted_total:
        log.info("usage.retention.pruned", events=deleted_total, retention_days=retention_days)
    return deleted_total


async def _next_id(database: Database, lo: int) -> int | None:
    async with database.engine.connect() as conn:
        found = (await conn.execute(_FIRST_ID, {"lo": lo})).scalar()
    return None if found is None else int(found)


def _audit(lo: int, hi: int, deleted: int, retention_days: float) -> dict[str, Any]:
    return entry(
        actor=ACTOR,
        action="usage.retention.prune",
        outcome="deleted",
        detail={"events": deleted, "id_from": lo, "id_to": hi, "retention_days": retention_days},
    )


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job: prune now, then once an hour."""
    while not stop.is_set():
        await prune(runtime.database, runtime.settings.outbox_retention_days, stop=stop)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=INTERVAL_SECONDS)
