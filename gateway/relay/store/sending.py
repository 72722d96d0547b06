"""The sender's statements: claim due deliveries, record what their attempts did, give back
leases at shutdown, count what is pending.

PostgreSQL claims in one autocommitted statement (lease, message body and endpoint) and
records a batch of outcomes in another; SQLite takes a few plain statements for each.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, fields
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db import Database
from gateway.relay.models import DELIVERED, PENDING
from gateway.relay.store.columns import ATTEMPT_COLUMNS, ATTEMPTS, pg_type


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
    + ", ".join(f"(a->>{i})::{pg_type(ATTEMPTS, name)}" for i, name in enumerate(ATTEMPT_COLUMNS))
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


async def pending_count(database: Database) -> int:
    async with database.engine.connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM relay_deliveries WHERE status = :p"), {"p": PENDING}
            )
        ).scalar_one()
    return int(count)
