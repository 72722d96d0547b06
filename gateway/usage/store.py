"""Outbox reads and state changes after acceptance: claims, outcomes, dead letter, status."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from gateway.db import Database
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


@dataclass(frozen=True)
class Claimed:
    id: int
    external_subscription_id: str
    transaction_id: str
    code: str
    payload: str
    attempts: int
    needs_check: bool


async def claim_due(database: Database, limit: int, lease_seconds: float) -> list[Claimed]:
    """Lease up to ``limit`` due events; other processes skip them until the lease ends."""
    now = time.time()
    lock = "FOR UPDATE SKIP LOCKED" if database.is_postgres else ""
    sql = text(
        "UPDATE usage_events SET next_attempt_at = :lease, attempts = attempts + 1 "
        "WHERE id IN (SELECT id FROM usage_events WHERE status = :pending "
        f"AND next_attempt_at <= :now ORDER BY next_attempt_at, id LIMIT :limit {lock}) "
        "RETURNING id, external_subscription_id, transaction_id, code, payload, attempts, needs_check"
    )
    params = {"lease": now + lease_seconds, "pending": PENDING, "now": now, "limit": limit}
    async with database.engine.begin() as conn:
        rows = (await conn.execute(sql, params)).all()
    claimed = [Claimed(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]
    claimed.sort(key=lambda c: c.id)
    return claimed


async def mark_forwarded(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(
            *_where_ids(
                conn,
                "UPDATE usage_events SET status = :s, forwarded_at = :now, last_error = NULL "
                "WHERE {ids}",
                ids,
                {"s": FORWARDED, "now": time.time()},
            )
        )


async def mark_dead(conn: AsyncConnection, reasons: dict[int, str]) -> None:
    for id_, reason in reasons.items():
        await conn.execute(
            text("UPDATE usage_events SET status = :s, last_error = :r WHERE id = :id"),
            {"s": DEAD, "r": reason, "id": id_},
        )


async def reschedule(
    conn: AsyncConnection, ids: list[int], at: float, error: str | None, *, refund: bool = False
) -> None:
    """Make events due again at ``at``; ``refund`` gives back the attempt (nothing was tried)."""
    if ids:
        refund_sql = ", attempts = attempts - 1" if refund else ""
        await conn.execute(
            *_where_ids(
                conn,
                "UPDATE usage_events SET next_attempt_at = :at, last_error = :e"
                f"{refund_sql} WHERE {{ids}} AND status = :pending",
                ids,
                {"at": at, "e": error, "pending": PENDING},
            )
        )


async def mark_checked(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(
            *_where_ids(conn, "UPDATE usage_events SET needs_check = 0 WHERE {ids}", ids, {})
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
