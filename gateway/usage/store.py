"""Outbox reads and state changes after acceptance: claims, outcomes, dead letter, status."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from gateway.db import Database, HeldConnection
from gateway.usage.models import DEAD, FORWARDED, PENDING

_IDS: BindParameter[Any] = bindparam("ids", expanding=True)


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
        statement = statement.bindparams(_IDS)
    return statement, {**params, **extra}


class Claimed(NamedTuple):
    """A claimed outbox row (a tuple: hundreds are built per claim)."""

    id: int
    external_subscription_id: str
    transaction_id: str
    code: str
    payload: str
    attempts: int
    needs_check: int
    due_at: float = 0.0  # next_attempt_at when claimed: with ``id``, the claim order's key

    @property
    def key(self) -> tuple[float, int]:
        return (self.due_at, self.id)


_CLAIMED_COLUMNS = (
    "id, external_subscription_id, transaction_id, code, payload, attempts, needs_check, "
    "next_attempt_at"
)
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


_COLUMNS = (
    "id, external_subscription_id, transaction_id, code, payload, status, attempts, "
    "accepted_at, next_attempt_at, forwarded_at, last_error, accepted_by"
)


def describe(row: Any) -> dict[str, Any]:
    """An outbox row as the gateway's API shows it."""
    return {
        "external_subscription_id": row.external_subscription_id,
        "transaction_id": row.transaction_id,
        "code": row.code,
        "event": orjson.loads(row.payload),
        "status": row.status,
        "attempts": row.attempts,
        "accepted_at": row.accepted_at,
        "accepted_by": row.accepted_by,
        "next_attempt_at": row.next_attempt_at if row.status == PENDING else None,
        "forwarded_at": row.forwarded_at,
        "last_error": row.last_error,
    }


async def find_events(
    database: Database, transaction_id: str, subscription: str | None
) -> list[dict[str, Any]]:
    where = "transaction_id = :tx"
    params: dict[str, Any] = {"tx": transaction_id}
    if subscription is not None:
        where += " AND external_subscription_id = :sub"
        params["sub"] = subscription
    async with database.engine.connect() as conn:
        rows = (
            await conn.execute(text(f"SELECT {_COLUMNS} FROM usage_events WHERE {where}"), params)
        ).all()
    return [describe(row) for row in rows]


async def list_dead(
    database: Database, after_id: int, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    async with database.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM usage_events WHERE status = :dead AND id > :after "
                    "ORDER BY id LIMIT :limit"
                ),
                {"dead": DEAD, "after": after_id, "limit": limit},
            )
        ).all()
    return [(row.id, describe(row)) for row in rows]


async def replay_dead(conn: AsyncConnection, transaction_ids: list[str] | None) -> list[str]:
    """Put dead events back in the queue (all, or those with these transaction ids)."""
    where = "status = :dead"
    stmt_params: dict[str, Any] = {"dead": DEAD}
    select = text(f"SELECT id, transaction_id FROM usage_events WHERE {where}")
    if transaction_ids is not None:
        select = text(
            f"SELECT id, transaction_id FROM usage_events WHERE {where} AND transaction_id IN :txs"
        ).bindparams(bindparam("txs", expanding=True))
        stmt_params["txs"] = transaction_ids
    rows = (await conn.execute(select, stmt_params)).all()
    ids = [row[0] for row in rows]
    if ids:
        await conn.execute(
            text(
                "UPDATE usage_events SET status = :pending, next_attempt_at = :now, attempts = 0 "
                "WHERE id IN :ids"
            ).bindparams(_IDS),
            {"pending": PENDING, "now": time.time(), "ids": ids},
        )
    return [row[1] for row in rows]


@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    oldest_pending_age_seconds: float | None
    dead: int
    forwarded_last_minute: int

    @property
    def forward_rate_per_second(self) -> float:
        return self.forwarded_last_minute / 60.0


async def status(database: Database, *, with_rate: bool = True) -> OutboxStatus:
    """Counts for ``gateway outbox status`` and the gauges (the rate scans recent rows)."""
    now = time.time()
    async with database.engine.connect() as conn:
        pending, oldest = (
            await conn.execute(
                text("SELECT count(*), min(accepted_at) FROM usage_events WHERE status = :p"),
                {"p": PENDING},
            )
        ).one()
        dead = (
            await conn.execute(
                text("SELECT count(*) FROM usage_events WHERE status = :d"), {"d": DEAD}
            )
        ).scalar_one()
        recent = 0
        if with_rate:
            recent = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM usage_events "
                        "WHERE status = :f AND forwarded_at >= :since"
                    ),
                    {"f": FORWARDED, "since": now - 60},
                )
            ).scalar_one()
    age = None if oldest is None else max(0.0, now - float(oldest))
    return OutboxStatus(int(pending), age, int(dead), int(recent))
