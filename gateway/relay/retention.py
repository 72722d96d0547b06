"""Retention: finished relay messages leave ``webhook_retention_days`` after they were stored.

A message goes, with its deliveries and attempts, when it is older than the cut-off and
every delivery is finished: ``delivered``, ``cancelled`` (the endpoint was deleted), or
``failed`` on an endpoint that is deleted or disabled (given up for good). A delivery still
``pending`` (first try or retrying), or ``failed`` on an endpoint that is enabled (an
operator may still ``recover`` it), keeps the message whatever its age; so does any delivery
attempted within the retention (a recent redelivery keeps its history). A message with no
delivery at all (nobody subscribed) is finished.

The job walks ``relay_messages`` by ``seq`` ranges, one short transaction per range, and
stops at the first range whose oldest message is younger than the cut-off. It never waits
on a row in use: on PostgreSQL the messages (and then their deliveries) are locked with
``SKIP LOCKED``, a message whose rows another transaction holds (a redelivery, a recovery,
another worker's prune) is left for the next run, and the DELETE checks "finished" again
once the locks are held. On SQLite the checking DELETE is the range's first write, so it
holds the database's only write lock from the check to the commit.
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import entry, record_many
from gateway.db import Database
from gateway.jobs import retention
from gateway.logging import get_logger
from gateway.relay import store
from gateway.relay.sender import ACTOR
from gateway.runtime import Runtime

log = get_logger(__name__)
RANGE_SEQS = 1_000
INTERVAL_SECONDS = 3_600.0
MESSAGES_PRUNED = Counter(
    "gateway_relay_messages_pruned_total",
    "Finished relay messages deleted by the retention job (with their deliveries and attempts)",
)


async def prune(
    database: Database,
    retention_days: float,
    *,
    now: float | None = None,
    range_seqs: int = RANGE_SEQS,
    stop: asyncio.Event | None = None,
) -> int:
    """Delete finished messages older than the retention; returns how many went."""
    cut_off = retention.cutoff(retention_days, now)

    async def step(conn: AsyncConnection, lo: int, hi: int) -> int:
        counts = await store.prune_range(conn, lo, hi, cut_off)
        if counts["messages"]:
            await record_many(conn, [_audit(lo, hi, counts, retention_days)])
        return counts["messages"]

    ranges = retention.Ranges(store.FIRST_SEQ, store.OLDEST, range_seqs)
    deleted_total = await retention.walk(database, ranges, cut_off, step, MESSAGES_PRUNED, stop)
    if deleted_total:
        log.info("relay.retention.pruned", messages=deleted_total, retention_days=retention_days)
    return deleted_total


def _audit(lo: int, hi: int, counts: Tally[str], retention_days: float) -> dict[str, Any]:
    return entry(
        actor=ACTOR,
        action="relay.retention.prune",
        outcome="deleted",
        detail={**counts, "seq_from": lo, "seq_to": hi, "retention_days": retention_days},
    )


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job: prune now, then once an hour."""
    days = runtime.settings.webhook_retention_days
    await retention.every(INTERVAL_SECONDS, stop, lambda: prune(runtime.database, days, stop=stop))
