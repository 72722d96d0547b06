"""Retention: handled inbound webhooks lose their raw body ``webhook_retention_days`` on.

The row itself stays, keys and all: ``(source, provider_event_id)`` and ``(source,
body_sha256)`` are what make a resent webhook a duplicate, and Lago signs HMAC webhooks
without a timestamp, so a body captured years ago still verifies. Deleting the row would let
it be stored and relayed again; clearing the body frees the space and keeps the keys.

Only ``handled`` rows whose receipt *and* handling are older than the cut-off are cleared
(the body becomes ``PRUNED_BODY``). Rows waiting to be handled (``received``) or given up
(``failed``, for someone to look at and retry) keep their body whatever their age, and
``handled`` is final: nothing reads the body of a handled row again.

The job walks the handled rows that still have a body (a partial index, migration 0009) by
primary-key ranges, one short transaction per range, and stops at the first range whose
oldest candidate is younger than the cut-off (ids grow with receipt time). Several workers
may run it at once: ``body <> ''`` in the UPDATE clears each body once.
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
from gateway.webhooks.models import HANDLED, PRUNED_BODY
from gateway.webhooks.processor import ACTOR

log = get_logger(__name__)
RANGE_IDS = 1_000
INTERVAL_SECONDS = 3_600.0
WEBHOOKS_PRUNED = Counter(
    "gateway_webhooks_pruned_total",
    "Handled inbound webhooks whose raw body the retention job cleared (keys kept)",
)

# Literal, as in the partial index's predicate, so that SQLite picks the index too.
_PRUNABLE = f"status = '{HANDLED}' AND body <> '{PRUNED_BODY}'"
_FIRST_ID = text(f"SELECT min(id) FROM inbound_webhooks WHERE {_PRUNABLE} AND id >= :lo")
_OLDEST = text(
    f"SELECT min(received_at) FROM inbound_webhooks WHERE {_PRUNABLE} AND id >= :lo AND id < :hi"
)
_CLEAR = text(
    f"UPDATE inbound_webhooks SET body = '{PRUNED_BODY}' WHERE {_PRUNABLE} "
    "AND id >= :lo AND id < :hi AND received_at < :cutoff AND handled_at < :cutoff"
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
    cutoff = (time.time() if now is None else now) - retention_days * 86_400
    cleared_total = 0
    lo = await _next_id(database, 0)
    while lo is not None and not (stop is not None and stop.is_set()):
        hi = lo + range_ids
        async with database.engine.begin() as conn:
            oldest = (await conn.execute(_OLDEST, {"lo": lo, "hi": hi})).scalar()
            if oldest is not None and float(oldest) >= cutoff:
                break
            result = await conn.execute(_CLEAR, {"lo": lo, "hi": hi, "cutoff": cutoff})
            cleared = max(result.rowcount or 0, 0)
            if cleared:
                await record_many(conn, [_audit(lo, hi, cleared, retention_days)])
        cleared_total += cleared
        WEBHOOKS_PRUNED.inc(cleared)
        lo = await _next_id(database, hi)
        await asyncio.sleep(0)  # let the inbox writer and the processor in between ranges
    if cleared_total:
        log.info("webhooks.retention.pruned", webhooks=cleared_total, retention_days=retention_days)
    return cleared_total


async def _next_id(database: Database, lo: int) -> int | None:
    async with database.engine.connect() as conn:
        found = (await conn.execute(_FIRST_ID, {"lo": lo})).scalar()
    return None if found is None else int(found)


def _audit(lo: int, hi: int, cleared: int, retention_days: float) -> dict[str, Any]:
    return entry(
        actor=ACTOR,
        action="webhooks.retention.prune",
        outcome="body_cleared",
        detail={"webhooks": cleared, "id_from": lo, "id_to": hi, "retention_days": retention_days},
    )


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job: prune now, then once an hour."""
    while not stop.is_set():
        await prune(runtime.database, runtime.settings.webhook_retention_days, stop=stop)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=INTERVAL_SECONDS)
