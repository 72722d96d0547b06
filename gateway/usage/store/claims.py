"""Claims and outcomes: the forwarder's statements. A loop claims due events (``claim``,
through the connection ``claim_connection`` gives it), then marks each forwarded, dead, or
due again later."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import Database, HeldConnection
from gateway.usage.models import DEAD, FORWARDED, PENDING
from gateway.usage.store.rows import IDS, Claimed


def _id_in(conn: AsyncConnection, ids: list[int]) -> tuple[Any, dict[str, Any]]:
    """``id IN ids`` as SQL and parameters.

    On PostgreSQL one array literal: 100 expanded placeholders cost a fresh compile in
    SQLAlchemy and a fresh parse in psycopg (it caches only statements of <= 50 parameters)
    on every forwarded batch.
    """
    if conn.dialect.name == "postgresql":
        return "id = ANY(CAST(:ids AS BIGINT[]))", {"ids": "{" + ",".join(map(str, ids)) + "}"}
    return "id IN :ids", {"ids": ids}


def _where_ids(conn: AsyncConnection, sql: str, ids: list[int], params: dict[str, Any]) -> Any:
    clause, extra = _id_in(conn, ids)
    statement = text(sql.replace("{ids}", clause))
    if "IN :ids" in clause:
        statement = statement.bindparams(IDS)
    return statement, {**params, **extra}


_CLAIMED_COLUMNS = ", ".join(Claimed._fields)
_DUE_WHERE = "status = :pending AND next_attempt_at <= :now"
_DUE_ORDER = " ORDER BY next_attempt_at, id LIMIT :limit"
_DUE = _DUE_WHERE + _DUE_ORDER
# After a claim that was full, the same loop's next claim starts past its last row: a
# backlog drained from the front leaves index entries of forwarded rows behind it (until
# vacuum), which a scan from the start would walk again on every claim.
_DUE_AFTER = _DUE_WHERE + " AND (next_attempt_at, id) > (:after_at, :after_id)" + _DUE_ORDER


@dataclass
class ClaimCursor:
    """Where a forwarding loop's next claim starts: past ``after``, or from the front."""

    after: tuple[float, int] | None = None


@dataclass
class Claim:
    """Events taken for one send, and the connection their outcomes are recorded on."""

    events: list[Claimed]
    conn: AsyncConnection

    @property
    def locked(self) -> bool:
        """Row-locked (PostgreSQL) rather than leased (SQLite)."""
        return self.conn.dialect.name == "postgresql"

    @asynccontextmanager
    async def settle(self) -> AsyncIterator[AsyncConnection]:
        """Where outcomes are written: the claiming transaction itself when the events are
        row-locked (it commits when the claim ends), else a transaction of its own."""
        if self.locked:
            yield self.conn
            return
        async with self.conn.begin():
            yield self.conn


def claim_connection(database: Database, hold_seconds: float) -> HeldConnection:
    """The connection a forwarding loop claims through: on PostgreSQL, a transaction left idle
    for longer than ``hold_seconds`` ends the session (see ``claim``)."""
    setup = None
    if database.is_postgres:
        timeout_ms = max(1, round(hold_seconds * 1000))
        setup = f"SET idle_in_transaction_session_timeout = {timeout_ms}"
    return HeldConnection(database.engine, setup=setup)


@asynccontextmanager
async def claim(
    held: HeldConnection,
    limit: int,
    hold_seconds: float,
    after: tuple[float, int] | None = None,
) -> AsyncIterator[Claim]:
    """Take up to ``limit`` due events, oldest first, for as long as the block runs.

    PostgreSQL: the events are row-locked (``FOR UPDATE SKIP LOCKED``) in a transaction that
    stays open across the send, and their outcomes are written in that same transaction. Other
    processes skip locked rows, so nothing is sent twice, and claiming writes nothing: each
    forwarded event costs one row version, not two. A crashed worker's transaction rolls back
    and its events are due again at once; the locks of a worker that vanished without closing
    its socket go after ``hold_seconds`` (the connection's
    ``idle_in_transaction_session_timeout``, from ``claim_connection``).

    SQLite (one writer: a transaction held across a send would stall ingestion): the claim
    moves ``next_attempt_at`` ``hold_seconds`` ahead as a lease, and outcomes are written in
    a second transaction; a crashed worker's events are due again when the lease ends.

    ``after`` (PostgreSQL): take only events past this (next_attempt_at, id) key, the last of
    the caller's previous full claim. Rows rescheduled meanwhile are due later, so they are
    past it too; rows another process held and released are found when the caller next
    claims without ``after`` (whenever a claim comes back short).
    """
    conn = await held.get()
    now = time.time()
    params = {"pending": PENDING, "now": now, "limit": limit}
    if conn.dialect.name != "postgresql":
        lease = text(
            "UPDATE usage_events SET next_attempt_at = :lease "
            f"WHERE id IN (SELECT id FROM usage_events WHERE {_DUE}) "
            f"RETURNING {_CLAIMED_COLUMNS}"
        )
        async with conn.begin():
            rows = (await conn.execute(lease, {**params, "lease": now + hold_seconds})).all()
        yield Claim(_claimed(rows), conn)
        return
    where = _DUE
    if after is not None:
        where = _DUE_AFTER
        params.update(after_at=after[0], after_id=after[1])
    lock = text(f"SELECT {_CLAIMED_COLUMNS} FROM usage_events WHERE {where} FOR UPDATE SKIP LOCKED")
    async with conn.begin():
        rows = (await conn.execute(lock, params)).all()
        yield Claim(_claimed(rows), conn)


def _claimed(rows: Sequence[Any]) -> list[Claimed]:
    return sorted(map(Claimed._make, rows))


async def mark_forwarded(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(
            *_where_ids(
                conn,
                "UPDATE usage_events SET status = :s, forwarded_at = :now, last_error = NULL, "
                "attempts = attempts + 1 WHERE {ids}",
                ids,
                {"s": FORWARDED, "now": time.time()},
            )
        )


async def mark_dead(conn: AsyncConnection, reasons: dict[int, str]) -> None:
    for id_, reason in reasons.items():
        await conn.execute(
            text(
                "UPDATE usage_events SET status = :s, last_error = :r, attempts = attempts + 1 "
                "WHERE id = :id"
            ),
            {"s": DEAD, "r": reason, "id": id_},
        )


async def reschedule(
    conn: AsyncConnection, ids: list[int], at: float, error: str | None, *, tried: bool
) -> None:
    """Make events due again at ``at``; ``tried`` counts an attempt (Lago was asked)."""
    if ids:
        tried_sql = ", attempts = attempts + 1" if tried else ""
        await conn.execute(
            *_where_ids(
                conn,
                "UPDATE usage_events SET next_attempt_at = :at, last_error = :e"
                f"{tried_sql} WHERE {{ids}} AND status = :pending",
                ids,
                {"at": at, "e": error, "pending": PENDING},
            )
        )
