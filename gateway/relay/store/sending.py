"""The relay tables, every statement on them: endpoints, messages, deliveries, attempts.

Column lists come from the models (``RelayMessage`` and ``RelayAttempt`` whole, deliveries
from ``DELIVERY_QUEUED_COLUMNS``), so no insert can leave a column out unseen. Statements
are built once, at import.

    enqueue     insert_messages_pg, insert_message, enabled_filters, insert_deliveries
    sender      claim_due, record_outcomes, release, pending_count
    health      mark_healthy, mark_failing, failing_longer_than, disable_endpoint
    API, CLI    endpoints_oldest_first, cancel_deliveries, message_page, message_row,
                deliveries_of, attempts_of, lock_message, endpoint_enabled, requeue,
                requeue_failed
    retention   FIRST_SEQ, OLDEST, prune_range
"""

from __future__ import annotations

import time
import weakref
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db import Database
from gateway.relay.models import (
    CANCELLED,
    DELIVERED,
    DELIVERY_QUEUED_COLUMNS,
    FAILED,
    PENDING,
    RelayAttempt,
    RelayDelivery,
    RelayEndpoint,
    RelayMessage,
)

_ENDPOINTS: Table = RelayEndpoint.__table__  # type: ignore[attr-defined]
_MESSAGES: Table = RelayMessage.__table__  # type: ignore[attr-defined]
_DELIVERIES: Table = RelayDelivery.__table__  # type: ignore[attr-defined]
_ATTEMPTS: Table = RelayAttempt.__table__  # type: ignore[attr-defined]
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
MESSAGE_COLUMNS = tuple(c.name for c in _MESSAGES.columns if c.name != "seq")
ATTEMPT_COLUMNS = tuple(c.name for c in _ATTEMPTS.columns if c.name != "id")


def _pg_type(table: Table, name: str) -> str:
    """The column's PostgreSQL type for a cast; text stays text, so an over-long value fails
    as in a plain INSERT instead of being cut to the column's length."""
    type_ = table.c[name].type
    return "text" if type_.python_type is str else str(type_.compile(dialect=_PG))


def _queued(values: dict[str, str]) -> tuple[str, str]:
    """``(columns, values)`` of a delivery insert, in ``DELIVERY_QUEUED_COLUMNS`` order."""
    return ", ".join(DELIVERY_QUEUED_COLUMNS), ", ".join(
        values[name] for name in DELIVERY_QUEUED_COLUMNS
    )


@dataclass(frozen=True)
class Target:
    """An endpoint as the sender needs it: where, and the secrets that sign."""

    id: str
    url: str
    enabled: bool
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: float | None
    failing_since: float | None

    def signing_secrets(self, now: float) -> list[str]:
        if self.previous_secret and (self.previous_secret_expires_at or 0.0) > now:
            return [self.secret, self.previous_secret]
        return [self.secret]


@dataclass(frozen=True)
class Claimed:
    """A leased delivery: ``attempt`` is its number in the current schedule (1 = first)."""

    delivery_id: int
    message_id: str
    attempt: int
    created_at: float
    body: str
    target: Target | None
    endpoint_id: str


_TARGET_COLUMNS = tuple(field.name for field in fields(Target))
_CLAIM = (
    "UPDATE relay_deliveries SET next_attempt_at = {lease}, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM relay_deliveries WHERE status = {pending} "
    "AND next_attempt_at <= {now} ORDER BY next_attempt_at, id LIMIT {limit} {lock}) "
    "RETURNING id, message_id, endpoint_id, attempts, created_at"
)
# PostgreSQL: lease, message and endpoint in one statement. synchronous_commit is off for
# this transaction only: a lease lost in a server crash merely makes the delivery due again
# (at least once), and live senders see the claim at once; no fsync wait on the hot path.
_CLAIM_PG = (
    "WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true) AS v), "
    "claimed AS ("
    + _CLAIM.format(
        lease="%(lease)s",
        pending="%(pending)s",
        now="%(now)s",
        limit="%(limit)s",
        lock="FOR UPDATE SKIP LOCKED",
    )
    + ") SELECT c.id, c.message_id, c.endpoint_id, c.attempts, c.created_at, m.body, "
    + ", ".join(f"e.{name}" for name in _TARGET_COLUMNS)
    + " FROM claimed c CROSS JOIN cfg "
    "JOIN relay_messages m ON m.id = c.message_id "
    "LEFT JOIN relay_endpoints e ON e.id = c.endpoint_id"
)


_AUTOCOMMIT: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def _autocommit(database: Database) -> AsyncEngine:
    """The database's engine in autocommit, made once (about 50 us a call otherwise): a claim
    is one statement, atomic by itself, so autocommit spares the BEGIN and COMMIT round trips."""
    engine = _AUTOCOMMIT.get(database.engine)
    if engine is None:
        engine = database.engine.execution_options(isolation_level="AUTOCOMMIT")
        _AUTOCOMMIT[database.engine] = engine
    return engine


async def claim_due(database: Database, limit: int, lease_seconds: float) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries; other senders skip them until the lease ends."""
    now = time.time()
    params = {"lease": now + lease_seconds, "pending": PENDING, "now": now, "limit": limit}
    if database.is_postgres:
        async with _autocommit(database).connect() as conn:
            found: list[Any] = list((await conn.exec_driver_sql(_CLAIM_PG, params)).all())
        claimed = [
            Claimed(r[0], r[1], r[3], r[4], r[5], _target(r[6:]) if r[6] else None, r[2])
            for r in found
        ]
        claimed.sort(key=lambda c: c.delivery_id)
        return claimed
    sql = text(
        _CLAIM.format(lease=":lease", pending=":pending", now=":now", limit=":limit", lock="")
    )
    async with database.engine.begin() as conn:
        rows = (await conn.execute(sql, params)).all()
        if not rows:
            return []
        bodies = await _bodies(conn, sorted({row[1] for row in rows}))
        targets = await targets_by_id(conn, sorted({row[2] for row in rows}))
    claimed = [
        Claimed(row[0], row[1], row[3], row[4], bodies[row[1]], targets.get(row[2]), row[2])
        for row in rows
        if row[1] in bodies
    ]
    claimed.sort(key=lambda c: c.delivery_id)
    return claimed


async def _bodies(conn: AsyncConnection, message_ids: list[str]) -> dict[str, str]:
    rows = await conn.execute(
        text("SELECT id, body FROM relay_messages WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        ),
        {"ids": message_ids},
    )
    return {row[0]: row[1] for row in rows}


async def targets_by_id(conn: AsyncConnection, endpoint_ids: list[str]) -> dict[str, Target]:
    rows = await conn.execute(
        _TARGETS_BY_ID,
        {"ids": endpoint_ids},
    )
    return {row[0]: _target(row) for row in rows}


_TARGETS_BY_ID = text(
    f"SELECT {', '.join(_TARGET_COLUMNS)} FROM relay_endpoints WHERE id IN :ids"
).bindparams(bindparam("ids", expanding=True))


def _target(row: Any) -> Target:
    return Target(row[0], row[1], bool(row[2]), row[3], row[4], row[5], row[6])


@dataclass
class Outcome:
    """What one attempt did to its delivery; ``status`` is the delivery's new status."""

    claimed: Claimed
    status: str
    attempted_at: float
    next_attempt_at: float
    http_status: int | None = None
    latency_ms: float = 0.0
    response_body: str | None = None
    error: str | None = None
    attempted: bool = True
    disable_reason: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == DELIVERED


async def record_outcomes(conn: AsyncConnection, outcomes: list[Outcome]) -> None:
    """Apply outcomes to their deliveries (only while the lease is still theirs), log attempts."""
    if conn.dialect.name == "postgresql":
        await _record_outcomes_pg(conn, outcomes)
        return
    await conn.execute(
        text(
            "UPDATE relay_deliveries SET status = :status, next_attempt_at = :next, "
            "last_attempt_at = COALESCE(:at, last_attempt_at), delivered_at = :delivered, "
            "last_status = :http, last_error = :error "
            "WHERE id = :id AND attempts = :n AND status = :pending"
        ),
        [
            {
                "status": o.status,
                "next": o.next_attempt_at,
                "at": o.attempted_at if o.attempted else None,
                "delivered": o.attempted_at if o.succeeded else None,
                "http": o.http_status,
                "error": o.error,
                "id": o.claimed.delivery_id,
                "n": o.claimed.attempt,
                "pending": PENDING,
            }
            for o in outcomes
        ],
    )
    attempts = [_attempt_row(o) for o in outcomes if o.attempted]
    if attempts:
        await conn.execute(
            _INSERT_ATTEMPTS, [dict(zip(ATTEMPT_COLUMNS, a, strict=True)) for a in attempts]
        )


async def _record_outcomes_pg(conn: AsyncConnection, outcomes: list[Outcome]) -> None:
    """The same in one statement, however many outcomes: the outcomes and the attempts
    travel as two JSON arrays of arrays (cheaper to build and send than an array per
    column); the update and the insert are one round trip."""
    settled = [
        (
            o.claimed.delivery_id,
            o.claimed.attempt,
            o.status,
            o.next_attempt_at,
            o.attempted_at if o.attempted else None,
            o.attempted_at if o.succeeded else None,
            o.http_status,
            o.error,
        )
        for o in outcomes
    ]
    attempts = [_attempt_row(o) for o in outcomes if o.attempted]
    params = {
        "outcomes": orjson.dumps(settled).decode(),
        "attempts": orjson.dumps(attempts).decode(),
        "pending": PENDING,
    }
    await conn.exec_driver_sql(_RECORD_OUTCOMES_PG, params)


_OUTCOME_COLUMNS = (
    ("id", "bigint"),
    ("n", "int"),
    ("status", "text"),
    ("next", "float8"),
    ("at", "float8"),
    ("delivered", "float8"),
    ("http", "int"),
    ("error", "text"),
)
_RECORD_OUTCOMES_PG = (
    "WITH o AS (SELECT "
    + ", ".join(f"(r->>{i})::{type_} AS {name}" for i, (name, type_) in enumerate(_OUTCOME_COLUMNS))
    + " FROM json_array_elements(%(outcomes)s::json) AS r), "
    "u AS (UPDATE relay_deliveries d SET status = o.status, next_attempt_at = o.next, "
    "last_attempt_at = COALESCE(o.at, d.last_attempt_at), delivered_at = o.delivered, "
    "last_status = o.http, last_error = o.error FROM o "
    "WHERE d.id = o.id AND d.attempts = o.n AND d.status = %(pending)s RETURNING 1) "
    f"INSERT INTO relay_attempts ({', '.join(ATTEMPT_COLUMNS)}) SELECT "
    + ", ".join(f"(a->>{i})::{_pg_type(_ATTEMPTS, name)}" for i, name in enumerate(ATTEMPT_COLUMNS))
    + " FROM json_array_elements(%(attempts)s::json) AS a"
)
_INSERT_ATTEMPTS = text(
    f"INSERT INTO relay_attempts ({', '.join(ATTEMPT_COLUMNS)}) "
    f"VALUES ({', '.join(':' + name for name in ATTEMPT_COLUMNS)})"
)


def _attempt_row(o: Outcome) -> tuple[Any, ...]:
    """An attempt's values in ``ATTEMPT_COLUMNS`` order."""
    values = {
        "delivery_id": o.claimed.delivery_id,
        "message_id": o.claimed.message_id,
        "endpoint_id": o.claimed.endpoint_id,
        "attempt": o.claimed.attempt,
        "attempted_at": o.attempted_at,
        "outcome": "succeeded" if o.succeeded else "failed",
        "status": o.http_status,
        "latency_ms": round(o.latency_ms, 3),
        "response_body": o.response_body,
        "error": o.error,
    }
    return tuple(values[name] for name in ATTEMPT_COLUMNS)


async def release(conn: AsyncConnection, claimed: list[Claimed]) -> None:
    """Give back leases of attempts that never finished (shutdown): due now, attempt refunded."""
    await conn.execute(
        text(
            "UPDATE relay_deliveries SET next_attempt_at = :now, attempts = attempts - 1 "
            "WHERE id = :id AND attempts = :n AND status = :pending"
        ),
        [
            {"now": time.time(), "id": c.delivery_id, "n": c.attempt, "pending": PENDING}
            for c in claimed
        ],
    )


async def mark_healthy(conn: AsyncConnection, endpoint_ids: list[str]) -> None:
    if endpoint_ids:
        await conn.execute(
            text("UPDATE relay_endpoints SET failing_since = NULL WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": endpoint_ids},
        )


async def mark_failing(conn: AsyncConnection, since: dict[str, float]) -> None:
    """Start the failure clock of endpoints that were healthy."""
    for endpoint_id, at in sorted(since.items()):
        await conn.execute(
            text(
                "UPDATE relay_endpoints SET failing_since = :at "
                "WHERE id = :id AND failing_since IS NULL"
            ),
            {"at": at, "id": endpoint_id},
        )


async def failing_longer_than(
    conn: AsyncConnection, endpoint_ids: list[str], cutoff: float
) -> list[str]:
    if not endpoint_ids:
        return []
    rows = await conn.execute(
        text(
            "SELECT id FROM relay_endpoints WHERE id IN :ids AND enabled = :yes "
            "AND failing_since IS NOT NULL AND failing_since <= :cutoff ORDER BY id"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": endpoint_ids, "yes": True, "cutoff": cutoff},
    )
    return [row[0] for row in rows]


async def disable_endpoint(
    conn: AsyncConnection, endpoint_id: str, reason: str
) -> dict[str, Any] | None:
    """Disable an enabled endpoint and fail its pending deliveries; None if it was not enabled."""
    now = time.time()
    row = (
        await conn.execute(
            text(
                "UPDATE relay_endpoints SET enabled = :no, disabled_reason = :reason, "
                "updated_at = :now WHERE id = :id AND enabled = :yes "
                "RETURNING id, url, description, filter_types, failing_since"
            ),
            {"no": False, "yes": True, "reason": reason[:255], "now": now, "id": endpoint_id},
        )
    ).first()
    if row is None:
        return None
    await conn.execute(
        text(
            "UPDATE relay_deliveries SET status = :failed, last_error = :error "
            "WHERE endpoint_id = :id AND status = :pending"
        ),
        {"failed": FAILED, "error": "endpoint disabled", "id": endpoint_id, "pending": PENDING},
    )
    return {
        "id": row[0],
        "url": row[1],
        "description": row[2],
        "filter_types": orjson.loads(row[3]),
        "failing_since": row[4],
        "reason": reason,
    }


async def pending_count(database: Database) -> int:
    async with database.engine.connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM relay_deliveries WHERE status = :p"), {"p": PENDING}
            )
        ).scalar_one()
    return int(count)


# Enqueueing. ``messages``: objects with an attribute per column of ``MESSAGE_COLUMNS`` but
# ``received_at`` (``service.NewMessage``).


def _message_row(message: Any, now: float) -> tuple[Any, ...]:
    return tuple(
        now if name == "received_at" else getattr(message, name) for name in MESSAGE_COLUMNS
    )


# One statement for all the messages, then a delivery per enabled endpoint whose patterns
# match (``*`` becomes LIKE's ``%``, ``_`` is escaped; the same rule as
# ``service.type_matches``). The rows travel as one JSON array of arrays.
_FANNED_OUT = _queued(
    {
        "message_id": "m.id",
        "endpoint_id": "e.id",
        "status": "%(pending)s",
        "attempts": "0",
        "next_attempt_at": "%(now)s",
        "created_at": "%(now)s",
    }
)
_ENQUEUE_PG = (
    "WITH r AS (SELECT "
    + ", ".join(
        f"(r->>{i})::{_pg_type(_MESSAGES, name)} AS {name}"
        for i, name in enumerate(MESSAGE_COLUMNS)
    )
    + " FROM json_array_elements(%(rows)s::json) AS r), "
    f"m AS (INSERT INTO relay_messages ({', '.join(MESSAGE_COLUMNS)}) "
    f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM r "
    "ON CONFLICT (id) DO NOTHING RETURNING id, type), "
    f"d AS (INSERT INTO relay_deliveries ({_FANNED_OUT[0]}) SELECT {_FANNED_OUT[1]} "
    "FROM m CROSS JOIN relay_endpoints e "
    "WHERE e.enabled AND EXISTS (SELECT 1 FROM json_array_elements_text(e.filter_types::json) "
    "AS f(p) WHERE m.type LIKE replace(replace(f.p, '_', '\\_'), '*', '%%')) RETURNING 1) "
    "SELECT ids, n, CASE WHEN n > 0 THEN pg_notify(%(channel)s, n::text) END "
    "FROM (SELECT (SELECT array_agg(id) FROM m) AS ids, (SELECT count(*) FROM d) AS n) AS t"
)


async def insert_messages_pg(
    conn: AsyncConnection, messages: Sequence[Any], now: float, channel: str
) -> tuple[set[str], int]:
    """PostgreSQL: store the new messages and their deliveries in one statement, which also
    notifies ``channel`` (on commit) of how many deliveries it added, if any; the ids stored
    now (the others existed) and the deliveries added."""
    rows = orjson.dumps([_message_row(m, now) for m in messages]).decode()
    params = {"rows": rows, "now": now, "pending": PENDING, "channel": channel}
    found: Any = (await conn.exec_driver_sql(_ENQUEUE_PG, params)).one()
    return set(found[0] or ()), int(found[1])


_INSERT_MESSAGE = text(
    f"INSERT INTO relay_messages ({', '.join(MESSAGE_COLUMNS)}) "
    f"VALUES ({', '.join(':' + name for name in MESSAGE_COLUMNS)}) "
    "ON CONFLICT (id) DO NOTHING RETURNING seq"
)


async def insert_message(conn: AsyncConnection, message: Any, now: float) -> bool:
    """Store one message; False, writing nothing, when its id exists."""
    row = dict(zip(MESSAGE_COLUMNS, _message_row(message, now), strict=True))
    return (await conn.execute(_INSERT_MESSAGE, row)).first() is not None


async def enabled_filters(conn: AsyncConnection) -> list[tuple[str, list[str]]]:
    """Every enabled endpoint's id and type patterns, by id."""
    rows = await conn.execute(
        text("SELECT id, filter_types FROM relay_endpoints WHERE enabled = :yes ORDER BY id"),
        {"yes": True},
    )
    return [(row[0], orjson.loads(row[1])) for row in rows]


_QUEUED = _queued(
    {
        "message_id": ":m",
        "endpoint_id": ":e",
        "status": ":pending",
        "attempts": "0",
        "next_attempt_at": ":now",
        "created_at": ":now",
    }
)
_INSERT_DELIVERIES = text(f"INSERT INTO relay_deliveries ({_QUEUED[0]}) VALUES ({_QUEUED[1]})")
_REQUEUE = (
    "status = :pending, attempts = 0, next_attempt_at = :now, delivered_at = NULL, "
    "last_status = NULL, last_error = NULL"
)
_UPSERT_DELIVERIES = text(
    f"INSERT INTO relay_deliveries ({_QUEUED[0]}) VALUES ({_QUEUED[1]}) "
    f"ON CONFLICT (message_id, endpoint_id) DO UPDATE SET {_REQUEUE}"
)


async def insert_deliveries(
    conn: AsyncConnection, message_id: str, endpoint_ids: list[str], now: float
) -> None:
    """A pending delivery of the message to each endpoint, due now."""
    if endpoint_ids:
        await conn.execute(
            _INSERT_DELIVERIES,
            [{"m": message_id, "e": e, "pending": PENDING, "now": now} for e in endpoint_ids],
        )


# The API and the CLI.


async def endpoints_oldest_first(session: AsyncSession) -> list[RelayEndpoint]:
    result = await session.exec(select(RelayEndpoint).order_by(_ENDPOINTS.c.created_at))
    return list(result.all())


async def cancel_deliveries(conn: AsyncConnection, endpoint_id: str, why: str) -> int:
    """Cancel the endpoint's pending deliveries; how many."""
    result = await conn.execute(
        text(
            "UPDATE relay_deliveries SET status = :cancelled, last_error = :why "
            "WHERE endpoint_id = :id AND status = :pending"
        ),
        {"cancelled": CANCELLED, "why": why, "id": endpoint_id, "pending": PENDING},
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def message_page(
    conn: AsyncConnection,
    *,
    type_: str | None,
    source: str | None,
    endpoint_id: str | None,
    status: str | None,
    before: int | None,
    limit: int,
) -> list[Any]:
    """Messages newest first (``type_`` exact, or a prefix ending in ``*``), without bodies."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if type_:
        if type_.endswith("*"):
            where.append("m.type LIKE :type ESCAPE '\\'")
            params["type"] = type_[:-1].replace("%", r"\%").replace("_", r"\_") + "%"
        else:
            where.append("m.type = :type")
            params["type"] = type_
    if source:
        where.append("m.source = :source")
        params["source"] = source
    if endpoint_id or status:
        sub = ["d.message_id = m.id"]
        if endpoint_id:
            sub.append("d.endpoint_id = :endpoint")
            params["endpoint"] = endpoint_id
        if status:
            sub.append("d.status = :status")
            params["status"] = status
        where.append(f"EXISTS (SELECT 1 FROM relay_deliveries d WHERE {' AND '.join(sub)})")
    if before is not None:
        where.append("m.seq < :before")
        params["before"] = before
    sql = (
        "SELECT m.seq, m.id, m.type, m.source, m.created_at, m.received_at "
        f"FROM relay_messages m WHERE {' AND '.join(where)} ORDER BY m.seq DESC LIMIT :limit"
    )
    return list((await conn.execute(text(sql), params)).all())


async def message_row(conn: AsyncConnection, message_id: str) -> Any | None:
    row = await conn.execute(
        text(
            "SELECT seq, id, type, source, created_at, received_at, body "
            "FROM relay_messages WHERE id = :id"
        ),
        {"id": message_id},
    )
    return row.first()


_DELIVERIES_OF = text(
    "SELECT message_id, endpoint_id, status, attempts, next_attempt_at, "
    "last_attempt_at, delivered_at, last_status, last_error FROM relay_deliveries "
    "WHERE message_id IN :ids ORDER BY id"
).bindparams(bindparam("ids", expanding=True))


async def deliveries_of(conn: AsyncConnection, message_ids: list[str]) -> list[Any]:
    """The deliveries of these messages, oldest first."""
    if not message_ids:
        return []
    return list((await conn.execute(_DELIVERIES_OF, {"ids": message_ids})).all())


async def attempts_of(conn: AsyncConnection, message_id: str) -> list[Any]:
    rows = await conn.execute(
        text(
            "SELECT endpoint_id, attempt, attempted_at, outcome, status, latency_ms, "
            "response_body, error FROM relay_attempts WHERE message_id = :id ORDER BY id"
        ),
        {"id": message_id},
    )
    return list(rows.all())


async def lock_message(conn: AsyncConnection, message_id: str) -> str | None:
    """The message's type, write-locked (both databases) for the rest of the transaction: the
    retention job cannot delete it meanwhile. None if there is no such message."""
    row = await conn.execute(
        text("UPDATE relay_messages SET type = type WHERE id = :id RETURNING type"),
        {"id": message_id},
    )
    found = row.first()
    return None if found is None else str(found[0])


async def endpoint_enabled(conn: AsyncConnection, endpoint_id: str) -> bool | None:
    """Whether the endpoint is enabled; None if there is no such endpoint."""
    enabled = (
        await conn.execute(
            text("SELECT enabled FROM relay_endpoints WHERE id = :id"), {"id": endpoint_id}
        )
    ).scalar()
    return None if enabled is None else bool(enabled)


async def requeue(
    conn: AsyncConnection, message_id: str, endpoint_ids: Iterable[str], now: float
) -> None:
    """Deliver the message again to these endpoints: a fresh pending delivery, or the old one
    reset (attempts from zero, due now)."""
    await conn.execute(
        _UPSERT_DELIVERIES,
        [{"m": message_id, "e": e, "pending": PENDING, "now": now} for e in endpoint_ids],
    )


async def requeue_failed(
    conn: AsyncConnection, endpoint_id: str, since: float, now: float
) -> list[str]:
    """Reset the endpoint's deliveries that failed since ``since``; their message ids."""
    rows = await conn.execute(
        text(
            f"UPDATE relay_deliveries SET {_REQUEUE} WHERE endpoint_id = :e AND status = :failed "
            "AND COALESCE(last_attempt_at, created_at) >= :since RETURNING message_id"
        ),
        {"e": endpoint_id, "failed": FAILED, "since": since, "pending": PENDING, "now": now},
    )
    return [row[0] for row in rows]


# Retention: finished messages (see ``retention``), walked by ``seq`` ranges.

_FINISHED = (
    "NOT EXISTS (SELECT 1 FROM relay_deliveries d "
    "LEFT JOIN relay_endpoints e ON e.id = d.endpoint_id "
    "WHERE d.message_id = relay_messages.id AND ("
    "NOT (d.status IN (:delivered, :cancelled) "
    "OR (d.status = :failed AND (e.id IS NULL OR e.enabled = :no))) "
    "OR COALESCE(d.last_attempt_at, d.created_at) >= :cutoff))"
)
FIRST_SEQ = text("SELECT min(seq) FROM relay_messages WHERE seq >= :lo")
OLDEST = text("SELECT min(received_at) FROM relay_messages WHERE seq >= :lo AND seq < :hi")
_CANDIDATES = (
    "SELECT seq, id FROM relay_messages WHERE seq >= :lo AND seq < :hi "
    f"AND received_at < :cutoff AND {_FINISHED} ORDER BY seq"
)
_ALL_DELIVERIES = text(
    "SELECT message_id FROM relay_deliveries WHERE message_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_LOCK_DELIVERIES = text(
    "SELECT message_id FROM relay_deliveries WHERE message_id IN :ids "
    "ORDER BY id FOR UPDATE SKIP LOCKED"
).bindparams(bindparam("ids", expanding=True))
_DELETE_MESSAGES = text(
    "DELETE FROM relay_messages WHERE seq IN :seqs AND received_at < :cutoff "
    f"AND {_FINISHED} RETURNING id"
).bindparams(bindparam("seqs", expanding=True))
_DELETE_DELIVERIES = text("DELETE FROM relay_deliveries WHERE message_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_DELETE_ATTEMPTS = text("DELETE FROM relay_attempts WHERE message_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


async def prune_range(conn: AsyncConnection, lo: int, hi: int, cutoff: float) -> Tally[str]:
    """Delete the finished messages of ``seq`` range ``[lo, hi)`` received before ``cutoff``,
    with their deliveries and attempts; how many of each went."""
    params: dict[str, Any] = {"delivered": DELIVERED, "cancelled": CANCELLED, "failed": FAILED}
    params.update(no=False, cutoff=cutoff)
    postgres = conn.dialect.name == "postgresql"
    lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
    range_params = {**params, "lo": lo, "hi": hi}
    found: list[Any] = list((await conn.execute(text(_CANDIDATES + lock), range_params)).all())
    if postgres and found:
        found = await _with_every_delivery_locked(conn, found)
    counts: Tally[str] = Tally()
    if not found:
        return counts
    deleted = (
        await conn.execute(_DELETE_MESSAGES, {**params, "seqs": [row[0] for row in found]})
    ).all()
    ids = [row[0] for row in deleted]
    if ids:
        counts["messages"] = len(ids)
        counts["deliveries"] = (await conn.execute(_DELETE_DELIVERIES, {"ids": ids})).rowcount
        counts["attempts"] = (await conn.execute(_DELETE_ATTEMPTS, {"ids": ids})).rowcount
    return counts


async def _with_every_delivery_locked(conn: AsyncConnection, found: list[Any]) -> list[Any]:
    """The candidates whose deliveries this transaction could lock, all of them; the others
    are being changed (a recovery requeueing one) and wait for the next run."""
    ids = [row[1] for row in found]
    existing = Tally(row[0] for row in await conn.execute(_ALL_DELIVERIES, {"ids": ids}))
    locked = Tally(row[0] for row in await conn.execute(_LOCK_DELIVERIES, {"ids": ids}))
    return [row for row in found if locked[row[1]] == existing[row[1]]]
