"""The ``usage_events`` table's repository: every statement on it, for every phase.

Acceptance (the group-commit writer, ``outbox``), claims and outcomes (the forwarder),
inspection and replay (the API and CLI), status counts, and retention's range deletes all
run here. Column lists come from the ``UsageEvent`` table model (``models``), which a test
checks against the migrated schema; the row types (``OutboxRow`` for a new event,
``Claimed`` for one taken to forward) name only columns of that model.

New rows reach PostgreSQL as one JSON parameter (``json_to_recordset``, keys and types from
the model): psycopg dumps arrays element by element in Python and JSON in C. SQLite gets
multi-row VALUES in chunks of ``SQLITE_CHUNK``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import psycopg
from sqlalchemy import bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from gateway.audit.store import bulk_insert_sql
from gateway.db import Database, HeldConnection
from gateway.usage.models import DEAD, FORWARDED, PENDING, UsageEvent

SQLITE_CHUNK = 400
_TABLE = UsageEvent.__table__  # type: ignore[attr-defined]
COLUMNS: tuple[str, ...] = tuple(column.name for column in _TABLE.columns)

Key = tuple[str, str]  # (external_subscription_id, transaction_id): the unique key


class OutboxRow(NamedTuple):
    """One event ready to store: the exact payload Lago will receive, its fingerprint, and
    the key name that sent it. Field names are the columns they fill."""

    external_subscription_id: str
    transaction_id: str
    code: str
    payload: str
    fingerprint: str
    needs_check: int = 0
    accepted_by: str = ""

    @property
    def key(self) -> Key:
        return (self.external_subscription_id, self.transaction_id)


class Claimed(NamedTuple):
    """A claimed outbox row (a tuple: hundreds are built per claim); fields are columns."""

    id: int
    external_subscription_id: str
    transaction_id: str
    code: str
    payload: str
    attempts: int
    needs_check: int
    next_attempt_at: float = 0.0  # when claimed: with ``id``, the claim order's key

    @property
    def key(self) -> tuple[float, int]:
        return (self.next_attempt_at, self.id)


# What a new row gets beside its own fields: pending, untried, due now.
_NEW_STATE = ("status", "attempts", "accepted_at", "next_attempt_at")
_INSERTED = ", ".join((*OutboxRow._fields, *_NEW_STATE))
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_RECORD = ", ".join(
    f"{name} {_TABLE.columns[name].type.compile(dialect=_PG)}" for name in OutboxRow._fields
)


# -- acceptance: the group-commit writer's statements ------------------------------------------


def _insert_events_sql(returning: str) -> str:
    """CTEs ``u`` (the rows of ``%(rows)s``) and ``ins`` (those inserted, ``RETURNING``)."""
    own = ", ".join(OutboxRow._fields)
    return (
        f"WITH u AS (SELECT * FROM json_to_recordset(%(rows)s::json) AS u({_RECORD})), "
        f"ins AS (INSERT INTO usage_events ({_INSERTED}) "
        f"SELECT {own}, %(status)s, 0, %(now)s, %(now)s FROM u "
        "ON CONFLICT (external_subscription_id, transaction_id) DO NOTHING "
        f"RETURNING {returning})"
    )


_INSERT_PG_SQL = _insert_events_sql("external_subscription_id, transaction_id") + (
    " SELECT u.external_subscription_id, u.transaction_id FROM u LEFT JOIN ins"
    " ON ins.external_subscription_id = u.external_subscription_id"
    " AND ins.transaction_id = u.transaction_id WHERE ins.transaction_id IS NULL"
)
# Events and audit rows together; the division by zero fails the whole statement (and so
# rolls back every insert in it) when fewer events were inserted than given.
_STORE_NEW_SQL = (
    _insert_events_sql("1")
    + f", audit AS ({bulk_insert_sql('audit')}) "
    + "SELECT 1 / ((SELECT count(*) FROM ins) = (SELECT count(*) FROM u))::int"
)
_INSERT_SQLITE_ROW = "(" + ",".join("?" * len(OutboxRow._fields)) + ",?,0,?,?)"


def _rows_json(rows: Sequence[OutboxRow]) -> str:
    return orjson.dumps([row._asdict() for row in rows]).decode()


async def store_new_pg(
    conn: psycopg.AsyncConnection[Any],
    rows: Sequence[OutboxRow],
    audit: list[dict[str, Any]],
    now: float,
) -> bool:
    """Store rows whose keys are all new, and their audit rows, in one autocommitted
    statement; False (nothing stored) when any key is already stored."""
    params = {
        "rows": _rows_json(rows),
        "audit": orjson.dumps(audit).decode(),
        "status": PENDING,
        "now": now,
    }
    try:
        await conn.execute(_STORE_NEW_SQL, params)
    except psycopg.errors.DivisionByZero:
        return False
    return True


async def insert_pg(conn: AsyncConnection, rows: Sequence[OutboxRow], now: float) -> set[Key]:
    """Insert the rows; return the keys that were not inserted (already stored)."""
    params = {"rows": _rows_json(rows), "status": PENDING, "now": now}
    result = await conn.exec_driver_sql(_INSERT_PG_SQL, params)
    found: list[Any] = list(result.all())
    return {(row[0], row[1]) for row in found}


async def insert_sqlite(conn: AsyncConnection, rows: Sequence[OutboxRow], now: float) -> set[Key]:
    """Insert the rows; return the keys that were not inserted (already stored)."""
    inserted: set[Key] = set()
    for start in range(0, len(rows), SQLITE_CHUNK):
        chunk = rows[start : start + SQLITE_CHUNK]
        params: list[Any] = []
        for row in chunk:
            params += row
            params += (PENDING, now, now)
        sql = (
            f"INSERT INTO usage_events ({_INSERTED}) "
            f"VALUES {','.join([_INSERT_SQLITE_ROW] * len(chunk))} "
            "ON CONFLICT (external_subscription_id, transaction_id) DO NOTHING "
            "RETURNING external_subscription_id, transaction_id"
        )
        result = await conn.exec_driver_sql(sql, tuple(params))
        found: list[Any] = list(result.all())
        inserted.update((row[0], row[1]) for row in found)
    return {row.key for row in rows} - inserted


def _keys_in(chunk: Sequence[Key]) -> tuple[str, dict[str, str]]:
    """``(external_subscription_id, transaction_id) IN (VALUES …)`` and its parameters."""
    placeholders = ",".join(f"(:s{i}, :t{i})" for i in range(len(chunk)))
    params: dict[str, str] = {}
    for i, (sub, tx) in enumerate(chunk):
        params[f"s{i}"], params[f"t{i}"] = sub, tx
    return f"(external_subscription_id, transaction_id) IN (VALUES {placeholders})", params


async def existing(conn: AsyncConnection, keys: list[Key]) -> dict[Key, tuple[str, str]]:
    """The stored ``(fingerprint, payload)`` of each of ``keys`` that is stored."""
    found: dict[Key, tuple[str, str]] = {}
    for start in range(0, len(keys), SQLITE_CHUNK):
        condition, params = _keys_in(keys[start : start + SQLITE_CHUNK])
        result = await conn.execute(
            text(
                "SELECT external_subscription_id, transaction_id, fingerprint, payload "
                f"FROM usage_events WHERE {condition}"
            ),
            params,
        )
        found.update({(s, t): (f, p) for s, t, f, p in result.all()})
    return found


async def delete(conn: AsyncConnection, keys: list[Key]) -> None:
    """Take back rows this transaction inserted for a request that is refused after all."""
    for start in range(0, len(keys), SQLITE_CHUNK):
        condition, params = _keys_in(keys[start : start + SQLITE_CHUNK])
        await conn.execute(text(f"DELETE FROM usage_events WHERE {condition}"), params)


# -- claims and outcomes: the forwarder's statements -------------------------------------------

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


# -- inspection and replay: the API's and the CLI's statements ---------------------------------

# What ``describe`` shows: every column but the fingerprint and the check flag.
_SHOWN = ", ".join(name for name in COLUMNS if name not in ("fingerprint", "needs_check"))


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
            await conn.execute(text(f"SELECT {_SHOWN} FROM usage_events WHERE {where}"), params)
        ).all()
    return [describe(row) for row in rows]


async def list_dead(
    database: Database, after_id: int, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    async with database.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT {_SHOWN} FROM usage_events WHERE status = :dead AND id > :after "
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


# -- status counts -----------------------------------------------------------------------------


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


# -- retention: forwarded rows leave by id range (``usage.retention``) ------------------------

FIRST_ID = text("SELECT min(id) FROM usage_events WHERE id >= :lo")
OLDEST_IN_RANGE = text("SELECT min(accepted_at) FROM usage_events WHERE id >= :lo AND id < :hi")
_DELETE_FORWARDED = text(
    "DELETE FROM usage_events WHERE id >= :lo AND id < :hi "
    "AND status = :forwarded AND forwarded_at < :cutoff"
)


async def delete_forwarded(conn: AsyncConnection, lo: int, hi: int, cutoff: float) -> int:
    """Delete the ids in ``[lo, hi)`` forwarded before ``cutoff``; how many went."""
    params = {"lo": lo, "hi": hi, "forwarded": FORWARDED, "cutoff": cutoff}
    return max((await conn.execute(_DELETE_FORWARDED, params)).rowcount or 0, 0)
