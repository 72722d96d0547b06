"""The ``inbound_webhooks`` table, every statement on it: receipt, claims, outcomes, status,
listing, replay, retention."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from gateway.db import Database
from gateway.webhooks.models import (
    DEAD,
    HANDLED,
    PRUNED_BODY,
    RECEIVED,
    SOURCES,
    STATUSES,
    STORED_COLUMNS,
    InboundWebhook,
)

_TABLE = InboundWebhook.__table__  # type: ignore[attr-defined]
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)

# What a verified webhook brings: source, provider event id, event type, body, body hash.
Received = tuple[str, str, str, str, str]


def _stored_row(received: Received, now: float) -> tuple[Any, ...]:
    """The values of ``STORED_COLUMNS`` for a webhook stored (and relayed) at ``now``."""
    return (*received, now, RECEIVED, 0, now, now)


def _insert_new_pg() -> str:
    """One statement per group, the rows as one JSON array of arrays in ``STORED_COLUMNS``
    order (cheaper to build than per-column arrays); text arrives as text, so an over-long
    value fails as it would in a plain INSERT."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    values = []
    for index, name in enumerate(STORED_COLUMNS):
        type_ = _TABLE.c[name].type
        cast = "" if type_.python_type is str else f"::{type_.compile(dialect=dialect)}"
        values.append(f"(r->>{index}){cast}")
    return (
        f"INSERT INTO {_TABLE.name} ({', '.join(STORED_COLUMNS)}) SELECT {', '.join(values)} "
        "FROM json_array_elements(%(rows)s::json) AS r "
        "ON CONFLICT DO NOTHING RETURNING source, provider_event_id"
    )


_INSERT_NEW_PG = _insert_new_pg()
_INSERT_NEW_SQLITE = (
    sqlite_insert(_TABLE)
    .on_conflict_do_nothing()
    .returning(_TABLE.c.source, _TABLE.c.provider_event_id)
)


async def insert_new(
    conn: AsyncConnection, received: Sequence[Received], now: float, *, is_postgres: bool
) -> set[tuple[str, str]]:
    """Store the webhooks not stored yet (unique on key and on body hash); the keys stored."""
    rows = [_stored_row(item, now) for item in received]
    if is_postgres:
        result = await conn.exec_driver_sql(_INSERT_NEW_PG, {"rows": orjson.dumps(rows).decode()})
        found: list[Any] = list(result.all())
    else:
        named = [dict(zip(STORED_COLUMNS, row, strict=True)) for row in rows]
        found = list((await conn.execute(_INSERT_NEW_SQLITE, named)).all())
    return {(row[0], row[1]) for row in found}


@dataclass(frozen=True)
class Claimed:
    id: int
    source: str
    provider_event_id: str
    event_type: str
    body: str
    received_at: float
    attempts: int
    handlers_done: frozenset[str] = frozenset()

    def as_model(self) -> InboundWebhook:
        """The row as the model handlers receive (status ``received`` while handled).

        Built without validation or ORM state (the values come from the table; handlers
        read it, no session holds it): an eighth of a full construction's CPU, per run."""
        return InboundWebhook.model_construct(
            id=self.id,
            source=self.source,
            provider_event_id=self.provider_event_id,
            event_type=self.event_type,
            body=self.body,
            body_sha256="",
            received_at=self.received_at,
            status=RECEIVED,
            attempts=self.attempts,
            next_attempt_at=self.received_at,
        )


async def claim_due(
    database: Database, limit: int, lease_seconds: float, now: float | None = None
) -> list[Claimed]:
    """Lease up to ``limit`` due webhooks; other processes skip them until the lease ends."""
    now = time.time() if now is None else now
    lock = "FOR UPDATE SKIP LOCKED" if database.is_postgres else ""
    sql = text(
        "UPDATE inbound_webhooks SET next_attempt_at = :lease, attempts = attempts + 1 "
        "WHERE id IN (SELECT id FROM inbound_webhooks WHERE status = :received "
        f"AND next_attempt_at <= :now ORDER BY next_attempt_at, id LIMIT :limit {lock}) "
        "RETURNING id, source, provider_event_id, event_type, body, received_at, attempts, "
        "handlers_done"
    )
    params = {"lease": now + lease_seconds, "received": RECEIVED, "now": now, "limit": limit}
    async with database.engine.begin() as conn:
        rows = (await conn.execute(sql, params)).all()
    claimed = [
        Claimed(r[0], r[1], r[2], r[3], r[4], float(r[5]), int(r[6]), _done(r[7])) for r in rows
    ]
    claimed.sort(key=lambda c: c.id)
    return claimed


def _done(value: str | None) -> frozenset[str]:
    return frozenset(orjson.loads(value)) if value else frozenset()


@dataclass(frozen=True)
class Settlement:
    """A claimed row's outcome: ``status`` is ``handled``, ``received`` (retry at
    ``next_attempt_at``) or ``dead``; ``handlers_done`` the handlers that succeeded so far."""

    id: int
    status: str
    handlers_done: frozenset[str]
    error: str | None = None
    next_attempt_at: float | None = None


_SETTLE = text(
    "UPDATE inbound_webhooks SET status = :status, last_error = :error, "
    "handlers_done = :done, next_attempt_at = coalesce(:at, next_attempt_at), "
    "handled_at = coalesce(:handled_at, handled_at) "
    "WHERE id = :id AND status = :received"
)
# PostgreSQL: the same for every row in one statement, the rows as one JSON array of arrays.
_SETTLE_PG = (
    "UPDATE inbound_webhooks w SET status = s.status, last_error = s.error, "
    "handlers_done = s.done, next_attempt_at = coalesce(s.at, w.next_attempt_at), "
    "handled_at = coalesce(s.handled_at, w.handled_at) "
    "FROM (SELECT (r->>0)::bigint AS id, r->>1 AS status, r->>2 AS error, r->>3 AS done, "
    "(r->>4)::float8 AS at, (r->>5)::float8 AS handled_at "
    "FROM json_array_elements(%(rows)s::json) AS r) AS s "
    "WHERE w.id = s.id AND w.status = %(received)s"
)


async def settle(conn: AsyncConnection, settlements: list[Settlement], now: float) -> None:
    """Write the outcomes of claimed rows (one statement)."""
    if not settlements:
        return
    rows = [
        (
            s.id,
            s.status,
            s.error,
            orjson.dumps(sorted(s.handlers_done)).decode() if s.handlers_done else None,
            s.next_attempt_at,
            now if s.status == HANDLED else None,
        )
        for s in settlements
    ]
    # A row listed twice (never in practice) is settled in order, as one update per row.
    if conn.dialect.name == "postgresql" and len({s.id for s in settlements}) == len(rows):
        params = {"rows": orjson.dumps(rows).decode(), "received": RECEIVED}
        await conn.exec_driver_sql(_SETTLE_PG, params)
        return
    names = ("id", "status", "error", "done", "at", "handled_at")
    await conn.execute(
        _SETTLE, [{**dict(zip(names, row, strict=True)), "received": RECEIVED} for row in rows]
    )


async def replay_dead(conn: AsyncConnection, ids: list[int] | None) -> list[int]:
    """Put dead webhooks back in the queue (all, or these ids); returns the ids requeued.

    Their relay message is not sent again (it was sent when they were stored); their
    handlers that had not succeeded run again."""
    select = "SELECT id FROM inbound_webhooks WHERE status = :dead"
    params: dict[str, Any] = {"dead": DEAD}
    statement = text(select)
    if ids is not None:
        statement = text(f"{select} AND id IN :ids").bindparams(_IDS)
        params["ids"] = ids
    found = [int(row[0]) for row in (await conn.execute(statement, params)).all()]
    if found:
        await conn.execute(
            text(
                "UPDATE inbound_webhooks SET status = :received, attempts = 0, "
                "next_attempt_at = :now WHERE id IN :ids AND status = :dead"
            ).bindparams(_IDS),
            {"received": RECEIVED, "now": time.time(), "ids": found, "dead": DEAD},
        )
    return found


async def unrelayed(database: Database, limit: int) -> list[Claimed]:
    """Rows stored before webhooks were relayed on receipt, waiting or dead, not yet relayed."""
    sql = text(
        "SELECT id, source, provider_event_id, event_type, body, received_at, attempts "
        "FROM inbound_webhooks WHERE status IN (:received, :dead) AND relayed_at IS NULL "
        "ORDER BY id LIMIT :n"
    )
    async with database.engine.connect() as conn:
        rows = (await conn.execute(sql, {"received": RECEIVED, "dead": DEAD, "n": limit})).all()
    return [Claimed(r[0], r[1], r[2], r[3], r[4], float(r[5]), int(r[6])) for r in rows]


async def mark_relayed(conn: AsyncConnection, ids: list[int], now: float) -> None:
    await conn.execute(
        text(
            "UPDATE inbound_webhooks SET relayed_at = :now WHERE id IN :ids AND relayed_at IS NULL"
        ).bindparams(_IDS),
        {"now": now, "ids": ids},
    )


@dataclass(frozen=True)
class InboxStatus:
    received: int
    oldest_received_age_seconds: float | None
    dead: int
    handled: int | None


async def _count(conn: AsyncConnection, status_: str) -> int:
    sql = text("SELECT count(*) FROM inbound_webhooks WHERE status = :s")
    return int((await conn.execute(sql, {"s": status_})).scalar_one())


async def status(database: Database, *, with_handled: bool = False) -> InboxStatus:
    """Counts by status (handled only on request: it scans) and the oldest unhandled age."""
    async with database.engine.connect() as conn:
        received, dead = await _count(conn, RECEIVED), await _count(conn, DEAD)
        handled = await _count(conn, HANDLED) if with_handled else None
        oldest = (
            await conn.execute(
                text("SELECT min(received_at) FROM inbound_webhooks WHERE status = :r"),
                {"r": RECEIVED},
            )
        ).scalar_one()
    age = None if oldest is None else max(0.0, time.time() - float(oldest))
    return InboxStatus(received, age, dead, handled)


_LISTED = (
    "id, source, provider_event_id, event_type, status, attempts, received_at, relayed_at, "
    "handled_at, next_attempt_at, last_error, handlers_done"
)


async def list_rows(
    database: Database,
    *,
    status: str | None = None,
    source: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Inbox rows without their bodies, by id, optionally by status and source."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    if source is not None and source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    where = ["id > :after"]
    params: dict[str, Any] = {"after": after_id or 0, "n": limit}
    if status is not None:
        where.append("status = :status")
        params["status"] = status
    if source is not None:
        where.append("source = :source")
        params["source"] = source
    sql = f"SELECT {_LISTED} FROM inbound_webhooks WHERE {' AND '.join(where)} ORDER BY id LIMIT :n"
    async with database.engine.connect() as conn:
        rows = (await conn.execute(text(sql), params)).all()
    return [_listed(dict(row._mapping)) for row in rows]


async def get_row(database: Database, id_: int) -> dict[str, Any] | None:
    async with database.engine.connect() as conn:
        row = (
            await conn.execute(
                text(f"SELECT {_LISTED} FROM inbound_webhooks WHERE id = :id"), {"id": id_}
            )
        ).first()
    return None if row is None else _listed(dict(row._mapping))


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    row["handlers_done"] = sorted(_done(row["handlers_done"]))
    if row["status"] != RECEIVED:
        row["next_attempt_at"] = None
    return row


# Retention: handled rows that still hold a body. Literal, as in the partial index's
# predicate (migration 0009), so that SQLite picks the index too.
_PRUNABLE = f"status = '{HANDLED}' AND body <> '{PRUNED_BODY}'"
PRUNABLE_FIRST_ID = text(f"SELECT min(id) FROM inbound_webhooks WHERE {_PRUNABLE} AND id >= :lo")
PRUNABLE_OLDEST = text(
    f"SELECT min(received_at) FROM inbound_webhooks WHERE {_PRUNABLE} AND id >= :lo AND id < :hi"
)
_CLEAR_BODIES = text(
    f"UPDATE inbound_webhooks SET body = '{PRUNED_BODY}' WHERE {_PRUNABLE} "
    "AND id >= :lo AND id < :hi AND received_at < :cutoff AND handled_at < :cutoff"
)


async def clear_bodies(conn: AsyncConnection, lo: int, hi: int, cutoff: float) -> int:
    """Clear the bodies of handled rows in ``[lo, hi)`` received and handled before ``cutoff``."""
    result = await conn.execute(_CLEAR_BODIES, {"lo": lo, "hi": hi, "cutoff": cutoff})
    return max(result.rowcount or 0, 0)
