"""The walk every retention job shares: key ranges, oldest first, one short transaction each.

A job names its table's first-key and oldest-row queries and what to do with one range; the
walk stops at the first range whose oldest row is younger than the cut-off (keys grow with
time), yields to the event loop between ranges, and counts what each committed range did.
Several processes may walk one table at once: each step must be safe to repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy import TextClause
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import Database

Step = Callable[[AsyncConnection, int, int], Awaitable[int]]


@dataclass(frozen=True)
class Ranges:
    """``first``: ``SELECT min(key) … WHERE key >= :lo``; ``oldest``: ``SELECT min(time) …
    WHERE key >= :lo AND key < :hi``."""

    first: TextClause
    oldest: TextClause
    size: int


def cutoff(retention_days: float, now: float | None = None) -> float:
    return (time.time() if now is None else now) - retention_days * 86_400


async def walk(
    database: Database,
    ranges: Ranges,
    cut_off: float,
    step: Step,
    counter: Counter,
    stop: asyncio.Event | None = None,
) -> int:
    """``step(conn, lo, hi)`` per range in its own transaction; the sum of what they returned."""
    total = 0
    lo = await _first(database, ranges.first, 0)
    while lo is not None and not (stop is not None and stop.is_set()):
        hi = lo + ranges.size
        async with database.engine.begin() as conn:
            oldest = (await conn.execute(ranges.oldest, {"lo": lo, "hi": hi})).scalar()
            if oldest is not None and float(oldest) >= cut_off:
                break
            done = await step(conn, lo, hi)
        total += done
        counter.inc(done)
        lo = await _first(database, ranges.first, hi)
        await asyncio.sleep(0)  # let the API and the other jobs in between ranges
    return total


async def _first(database: Database, first: TextClause, lo: int) -> int | None:
    async with database.engine.connect() as conn:
        found = (await conn.execute(first, {"lo": lo})).scalar()
    return None if found is None else int(found)


async def every(interval: float, stop: asyncio.Event, job: Callable[[], Awaitable[object]]) -> None:
    """Worker job shape: ``job()`` now, then every ``interval`` seconds until ``stop``."""
    while not stop.is_set():
        await job()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
