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


async def claim_due(database: Database, limit: int, lease_seconds: float) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries; other senders skip them until the lease ends."""
    now = time.time()
    lock = "FOR UPDATE SKIP LOCKED" if database.is_postgres else ""
    sql = text(
        "UPDATE relay_deliveries SET next_attempt_at = :lease, attempts = attempts + 1 "
        "WHERE id IN (SELECT id FROM relay_deliveries WHERE status = :pending "
        f"AND next_attempt_at <= :now ORDER BY next_attempt_at, id LIMIT :limit {lock}) "
        "RETURNING id, message_id, endpoint_id, attempts, created_at"
    )
    params = {"lease": now + lease_seconds, "pending": PENDING, "now": now, "limit": limit}
    async with database.engine.begin() as conn:
        if database.is_postgres:
            # A lease lost in a server crash only makes the delivery due again (at least once);
            # live senders still see the claim at once. No fsync wait on the hot path.
            await conn.execute(text("SET LOCAL synchronous_commit = off"))
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
    return {row[0]: Target(row[0], row[1], bool(row[2]), *row[3:]) for row in rows}


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


async def disable_endpoint(conn: AsyncConnection, endpoint_id: str, reason: str) -> dict[str, Any] | None:
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
