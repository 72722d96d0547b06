"""Inspection and replay (the API's and the CLI's statements), and the status counts of
``gateway outbox status`` and the gauges."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import Database
from gateway.usage.models import DEAD, FORWARDED, PENDING
from gateway.usage.store.rows import COLUMNS, IDS

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
            ).bindparams(IDS),
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
