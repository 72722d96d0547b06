"""Delivery state in the database: leases on due deliveries, and what became of each attempt."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import Database
from gateway.relay.models import DELIVERED, FAILED, PENDING


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
    "e.id, e.url, e.enabled, e.secret, e.previous_secret, e.previous_secret_expires_at, "
    "e.failing_since FROM claimed c CROSS JOIN cfg "
    "JOIN relay_messages m ON m.id = c.message_id "
    "LEFT JOIN relay_endpoints e ON e.id = c.endpoint_id"
)


async def claim_due(database: Database, limit: int, lease_seconds: float) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries; other senders skip them until the lease ends."""
    now = time.time()
    params = {"lease": now + lease_seconds, "pending": PENDING, "now": now, "limit": limit}
    if database.is_postgres:
        # One statement, atomic by itself: autocommit spares the BEGIN and COMMIT round trips.
        engine = database.engine.execution_options(isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
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
        text(
            "SELECT id, url, enabled, secret, previous_secret, previous_secret_expires_at, "
            "failing_since FROM relay_endpoints WHERE id IN :ids"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": endpoint_ids},
    )
    return {row[0]: _target(row) for row in rows}


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
            text(
                "INSERT INTO relay_attempts (delivery_id, message_id, endpoint_id, attempt, "
                "attempted_at, outcome, status, latency_ms, response_body, error) VALUES "
                "(:delivery_id, :message_id, :endpoint_id, :attempt, :attempted_at, :outcome, "
                ":status, :latency_ms, :response_body, :error)"
            ),
            attempts,
        )


async def _record_outcomes_pg(conn: AsyncConnection, outcomes: list[Outcome]) -> None:
    """The same as two statements over arrays, however many outcomes."""
    await conn.exec_driver_sql(
        "UPDATE relay_deliveries d SET status = u.status, next_attempt_at = u.next, "
        "last_attempt_at = COALESCE(u.at, d.last_attempt_at), delivered_at = u.delivered, "
        "last_status = u.http, last_error = u.error FROM unnest(%(id)s::bigint[], "
        "%(n)s::int[], %(status)s::text[], %(next)s::float8[], %(at)s::float8[], "
        "%(delivered)s::float8[], %(http)s::int[], %(error)s::text[]) "
        "AS u(id, n, status, next, at, delivered, http, error) "
        "WHERE d.id = u.id AND d.attempts = u.n AND d.status = %(pending)s",
        {
            "id": [o.claimed.delivery_id for o in outcomes],
            "n": [o.claimed.attempt for o in outcomes],
            "status": [o.status for o in outcomes],
            "next": [o.next_attempt_at for o in outcomes],
            "at": [o.attempted_at if o.attempted else None for o in outcomes],
            "delivered": [o.attempted_at if o.succeeded else None for o in outcomes],
            "http": [o.http_status for o in outcomes],
            "error": [o.error for o in outcomes],
            "pending": PENDING,
        },
    )
    rows = [_attempt_row(o) for o in outcomes if o.attempted]
    if rows:
        columns = list(rows[0])
        types = {"delivery_id": "bigint", "attempt": "int", "status": "int"}
        floats = ("attempted_at", "latency_ms")
        arrays = ", ".join(
            f"%({c})s::{types.get(c, 'float8' if c in floats else 'text')}[]" for c in columns
        )
        await conn.exec_driver_sql(
            f"INSERT INTO relay_attempts ({', '.join(columns)}) SELECT * FROM unnest({arrays})",
            {c: [row[c] for row in rows] for c in columns},
        )


def _attempt_row(o: Outcome) -> dict[str, Any]:
    return {
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
