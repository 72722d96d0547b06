"""Inbox reads and state changes after receipt: claims, outcomes, status, retry."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from gateway.db import Database
from gateway.webhooks.models import FAILED, HANDLED, RECEIVED, InboundWebhook

_IDS: BindParameter[Any] = bindparam("ids", expanding=True)


@dataclass(frozen=True)
class Claimed:
    id: int
    source: str
    provider_event_id: str
    event_type: str
    body: str
    received_at: float
    attempts: int

    def as_model(self) -> InboundWebhook:
        """The row as the model handlers receive (status ``received`` while handled)."""
        return InboundWebhook(
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
        "RETURNING id, source, provider_event_id, event_type, body, received_at, attempts"
    )
    params = {"lease": now + lease_seconds, "received": RECEIVED, "now": now, "limit": limit}
    async with database.engine.begin() as conn:
        rows = (await conn.execute(sql, params)).all()
    claimed = [Claimed(r[0], r[1], r[2], r[3], r[4], float(r[5]), int(r[6])) for r in rows]
    claimed.sort(key=lambda c: c.id)
    return claimed


async def mark_handled(conn: AsyncConnection, ids: list[int], now: float) -> None:
    if ids:
        await conn.execute(
            text(
                "UPDATE inbound_webhooks SET status = :handled, handled_at = :now, "
                "last_error = NULL WHERE id IN :ids AND status = :received"
            ).bindparams(_IDS),
            {"handled": HANDLED, "now": now, "ids": ids, "received": RECEIVED},
        )


async def reschedule(conn: AsyncConnection, id_: int, at: float, error: str) -> None:
    await conn.execute(
        text(
            "UPDATE inbound_webhooks SET next_attempt_at = :at, last_error = :e "
            "WHERE id = :id AND status = :received"
        ),
        {"at": at, "e": error, "id": id_, "received": RECEIVED},
    )


async def mark_failed(conn: AsyncConnection, id_: int, error: str) -> None:
    await conn.execute(
        text(
            "UPDATE inbound_webhooks SET status = :failed, last_error = :e "
            "WHERE id = :id AND status = :received"
        ),
        {"failed": FAILED, "e": error, "id": id_, "received": RECEIVED},
    )


async def retry_failed(conn: AsyncConnection, ids: list[int] | None) -> list[int]:
    """Put failed webhooks back in the queue (all, or these ids); returns the ids requeued."""
    select = "SELECT id FROM inbound_webhooks WHERE status = :failed"
    params: dict[str, Any] = {"failed": FAILED}
    statement = text(select)
    if ids is not None:
        statement = text(f"{select} AND id IN :ids").bindparams(_IDS)
        params["ids"] = ids
    found = [int(row[0]) for row in (await conn.execute(statement, params)).all()]
    if found:
        await conn.execute(
            text(
                "UPDATE inbound_webhooks SET status = :received, attempts = 0, "
                "next_attempt_at = :now WHERE id IN :ids"
            ).bindparams(_IDS),
            {"received": RECEIVED, "now": time.time(), "ids": found},
        )
    return found


@dataclass(frozen=True)
class InboxStatus:
    received: int
    oldest_received_age_seconds: float | None
    failed: int
    handled: int | None


async def _count(conn: AsyncConnection, status_: str) -> int:
    sql = text("SELECT count(*) FROM inbound_webhooks WHERE status = :s")
    return int((await conn.execute(sql, {"s": status_})).scalar_one())


async def status(database: Database, *, with_handled: bool = False) -> InboxStatus:
    """Counts by status (handled only on request: it scans) and the oldest unhandled age."""
    async with database.engine.connect() as conn:
        received, failed = await _count(conn, RECEIVED), await _count(conn, FAILED)
        handled = await _count(conn, HANDLED) if with_handled else None
        oldest = (
            await conn.execute(
                text("SELECT min(received_at) FROM inbound_webhooks WHERE status = :r"),
                {"r": RECEIVED},
            )
        ).scalar_one()
    age = None if oldest is None else max(0.0, time.time() - float(oldest))
    return InboxStatus(received, age, failed, handled)


async def failed_rows(database: Database, limit: int) -> list[dict[str, Any]]:
    """Webhooks given up after every retry, oldest first (ids and reasons, no bodies)."""
    async with database.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT id, source, provider_event_id, event_type, received_at, attempts, "
                    "last_error FROM inbound_webhooks WHERE status = :f ORDER BY id LIMIT :n"
                ),
                {"f": FAILED, "n": limit},
            )
        ).all()
    return [dict(row._mapping) for row in rows]
