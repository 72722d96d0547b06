"""The retention job: forwarded events older than the retention leave the outbox, nothing else."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text

from gateway import worker
from gateway.db import Database
from gateway.usage import retention
from gateway.usage.models import DEAD, FORWARDED, PENDING
from tests.conftest import Gateway

DAY = 86_400.0
NOW = time.time()


async def _insert(database: Database, rows: list[tuple[str, str, float, float | None]]) -> None:
    """Rows of (transaction id, status, accepted_at, forwarded_at)."""
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO usage_events (external_subscription_id, transaction_id, code, "
                "payload, "
                "fingerprint, status, attempts, accepted_at, next_attempt_at, forwarded_at, "
                "needs_check, accepted_by) VALUES ('sub', :tx, 'm', '{}', 'f', :status, 1, "
                ":accepted, :accepted, :forwarded, 0, 'test')"
            ),
            [
                {"tx": tx, "status": status, "accepted": accepted, "forwarded": forwarded}
                for tx, status, accepted, forwarded in rows
            ],
        )


async def _remaining(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT transaction_id FROM usage_events"))).all()
    return {row[0] for row in rows}


async def test_only_forwarded_events_past_the_retention_are_deleted(gateway: Gateway) -> None:
    database = gateway.runtime.database
    await _insert(
        database,
        [
            ("old_forwarded", FORWARDED, NOW - 40 * DAY, NOW - 39 * DAY),
            ("old_pending", PENDING, NOW - 40 * DAY, None),
            ("old_dead", DEAD, NOW - 40 * DAY, None),
            ("forwarded_late", FORWARDED, NOW - 40 * DAY, NOW - 10 * DAY),
            ("recent_forwarded", FORWARDED, NOW - 2 * DAY, NOW - 2 * DAY),
        ],
    )
    deleted = await retention.prune(database, 30, now=NOW)
    assert deleted == 1
    assert await _remaining(database) == {
        "old_pending",
        "old_dead",
        "forwarded_late",
        "recent_forwarded",
    }


async def test_pruning_walks_the_table_in_small_id_ranges_and_audits_each(
    gateway: Gateway,
) -> None:
    database = gateway.runtime.database
    old = [(f"tx_{n}", FORWARDED, NOW - 60 * DAY, NOW - 60 * DAY) for n in range(23)]
    await _insert(database, [*old, ("kept", DEAD, NOW - 60 * DAY, None)])
    assert await retention.prune(database, 30, now=NOW, range_ids=4) == 23
    assert await _remaining(database) == {"kept"}
    async with database.engine.connect() as conn:
        audited = (
            await conn.execute(
                text("SELECT count(*) FROM audit_entries WHERE action = 'usage.retention.prune'")
            )
        ).scalar_one()
    assert audited == 6  # ceil(23 / 4) ranges held rows to delete


async def test_pruning_stops_at_the_first_range_younger_than_the_cut_off(
    gateway: Gateway,
) -> None:
    database = gateway.runtime.database
    await _insert(database, [("old", FORWARDED, NOW - 60 * DAY, NOW - 60 * DAY)])
    await _insert(database, [(f"young_{n}", FORWARDED, NOW - DAY, NOW - DAY) for n in range(5)])
    # Ids grow with acceptance time, so an old event after young ones does not happen in use;
    # here it shows that the walk ends at the first young range instead of scanning on.
    await _insert(database, [("after_young", FORWARDED, NOW - 60 * DAY, NOW - 60 * DAY)])
    assert await retention.prune(database, 30, now=NOW, range_ids=2) == 1
    assert "after_young" in await _remaining(database)


async def test_the_retention_is_a_setting_defaulting_to_thirty_days(gateway: Gateway) -> None:
    assert gateway.runtime.settings.outbox_retention_days == 30
    await _insert(gateway.runtime.database, [("a", FORWARDED, NOW - 31 * DAY, NOW - 31 * DAY)])
    assert await retention.prune(gateway.runtime.database, 45, now=NOW) == 0
    assert await retention.prune(gateway.runtime.database, 30, now=NOW) == 1


async def test_the_job_runs_in_every_worker_and_stops_when_asked(gateway: Gateway) -> None:
    assert worker.job_function("usage.retention") is retention.run
    await _insert(gateway.runtime.database, [("a", FORWARDED, NOW - 31 * DAY, NOW - 31 * DAY)])
    stop = asyncio.Event()
    job = asyncio.create_task(retention.run(gateway.runtime, stop))
    for _ in range(100):
        if not await _remaining(gateway.runtime.database):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(job, timeout=5)
    assert await _remaining(gateway.runtime.database) == set()
