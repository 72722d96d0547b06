"""Claims on the outbox: concurrent claims take disjoint events, an abandoned claim gives its
events back, and outcomes land where the claim says (row locks on PostgreSQL, leases on
SQLite)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.db import Database
from gateway.usage import store


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    now = time.time()
    async with db.engine.begin() as conn:
        for i in range(10):
            await conn.execute(
                text(
                    "INSERT INTO usage_events (external_subscription_id, transaction_id, code, "
                    "payload, fingerprint, status, attempts, accepted_at, next_attempt_at, "
                    "needs_check, accepted_by) VALUES ('sub_1', :tx, 'photo_generation', '{}', "
                    "'f', 'pending', 0, :now, :now, 0, 'test')"
                ),
                {"tx": f"c-{i}", "now": now - 10 + i},
            )
    try:
        yield db
    finally:
        await db.dispose()


def _ids(claim: store.Claim) -> list[str]:
    return [c.transaction_id for c in claim.events]


async def test_concurrent_claims_take_disjoint_events_oldest_first(database: Database) -> None:
    first, second, third = (store.claim_connection(database, 30) for _ in range(3))
    try:
        async with (
            store.claim(first, 4, 30) as a,
            store.claim(second, 4, 30) as b,
            store.claim(third, 4, 30) as c,
        ):
            assert _ids(a) == [f"c-{i}" for i in range(4)]
            assert _ids(b) == [f"c-{i}" for i in range(4, 8)]
            assert _ids(c) == ["c-8", "c-9"]
    finally:
        for held in (first, second, third):
            await held.release()


async def test_outcomes_recorded_through_a_claim_count_one_attempt(database: Database) -> None:
    held = store.claim_connection(database, 30)
    try:
        async with store.claim(held, 3, 30) as claim:
            ids = [c.id for c in claim.events]
            async with claim.settle() as conn:
                await store.mark_forwarded(conn, ids[:1])
                await store.mark_dead(conn, {ids[1]: '{"code":["invalid"]}'})
                await store.reschedule(conn, ids[2:], time.time() + 100, "boom", tried=True)
        async with store.claim(held, 10, 30) as later:
            assert _ids(later) == [f"c-{i}" for i in range(3, 10)]  # none of the three is due
    finally:
        await held.release()
    async with database.engine.connect() as conn:
        rows = dict(
            (await conn.execute(text("SELECT transaction_id, attempts FROM usage_events"))).all()
        )
    assert rows["c-0"] == rows["c-1"] == rows["c-2"] == 1
    assert rows["c-3"] == 0  # claimed, nothing recorded: no attempt counted


async def test_a_claim_that_fails_before_its_outcomes_gives_its_events_back(
    database: Database,
) -> None:
    """A worker that crashes mid-send: its locks go with its transaction (PostgreSQL), or its
    lease runs out (SQLite)."""
    held, other = store.claim_connection(database, 1.0), store.claim_connection(database, 1.0)

    async def crash_mid_send() -> None:
        async with store.claim(held, 5, 1.0) as claim:
            assert len(claim.events) == 5
            raise RuntimeError("the send crashed")

    try:
        with pytest.raises(RuntimeError):
            await crash_mid_send()
        async with store.claim(other, 10, 1.0) as right_after:
            expected = 10 if database.is_postgres else 5
            assert len(right_after.events) == expected
        if database.is_sqlite:
            await asyncio.sleep(2.1)  # both leases (the second claim took the other five) end
            async with store.claim(other, 10, 1.0) as after_the_lease:
                assert len(after_the_lease.events) == 10
    finally:
        await held.release()
        await other.release()


async def test_a_claim_left_idle_past_its_hold_loses_its_locks_on_postgres(
    database: Database,
) -> None:
    """A worker that vanished without closing its socket does not keep its events."""
    if not database.is_postgres:
        pytest.skip("row locks are PostgreSQL's; SQLite's lease is covered above")
    held, other = store.claim_connection(database, 0.5), store.claim_connection(database, 30)

    async def stall_then_settle() -> None:
        async with store.claim(held, 10, 0.5) as stalled:
            assert len(stalled.events) == 10
            async with store.claim(other, 10, 30) as meanwhile:
                assert meanwhile.events == []
            await asyncio.sleep(1.5)
            async with stalled.settle() as conn:  # PostgreSQL ended the session
                await store.mark_forwarded(conn, [c.id for c in stalled.events])

    try:
        with pytest.raises(DBAPIError):
            await stall_then_settle()
        async with store.claim(other, 10, 30) as again:
            assert len(again.events) == 10
    finally:
        await held.release()
        await other.release()


async def test_a_claim_after_a_key_starts_past_it(database: Database, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("SQLite leases move next_attempt_at: claims there start from the front")
    held = store.claim_connection(database, 30)
    try:
        async with store.claim(held, 3, 30) as first:
            last = max(event.key for event in first.events)
            async with first.settle() as conn:
                await store.mark_forwarded(conn, [c.id for c in first.events])
        async with store.claim(held, 3, 30, after=last) as second:
            assert _ids(second) == ["c-3", "c-4", "c-5"]
        # Rows behind the key are not lost: a claim without one finds them.
        async with store.claim(held, 10, 30, after=max(e.key for e in second.events)) as rest:
            assert _ids(rest) == ["c-6", "c-7", "c-8", "c-9"]
        async with store.claim(held, 10, 30) as front:
            assert _ids(front) == [f"c-{i}" for i in range(3, 10)]
    finally:
        await held.release()
