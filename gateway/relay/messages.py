"""Relay messages after they are stored: reads, redelivery, recovery (caller's transaction)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import Conflict, NotFound
from gateway.relay.models import CANCELLED, DELIVERED, FAILED, PENDING
from gateway.relay.service import iso, matching_endpoints


@dataclass
class MessageFilter:
    type: str | None = None
    source: str | None = None
    endpoint_id: str | None = None
    status: str | None = None


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "endpoint_id": row.endpoint_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at) if row.status == PENDING else None,
        "last_attempt_at": None if row.last_attempt_at is None else iso(row.last_attempt_at),
        "delivered_at": None if row.delivered_at is None else iso(row.delivered_at),
        "last_status": row.last_status,
        "last_error": row.last_error,
    }


def summary_status(deliveries: list[dict[str, Any]]) -> str:
    """One word for a message: pending, failed, delivered, cancelled, or no_endpoints."""
    statuses = {d["status"] for d in deliveries}
    for status in (PENDING, FAILED, DELIVERED, CANCELLED):
        if status in statuses:
            return status
    return "no_endpoints"


async def _deliveries_of(conn: AsyncConnection, message_ids: list[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {message_id: [] for message_id in message_ids}
    if message_ids:
        rows = await conn.execute(
            text(
                "SELECT message_id, endpoint_id, status, attempts, next_attempt_at, "
                "last_attempt_at, delivered_at, last_status, last_error FROM relay_deliveries "
                "WHERE message_id IN :ids ORDER BY id"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": message_ids},
        )
        for row in rows:
            found[row.message_id].append(_delivery(row))
    return found


def _message(row: Any, deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "source": row.source,
        "created_at": iso(row.created_at),
        "received_at": iso(row.received_at),
        "status": summary_status(deliveries),
        "deliveries": deliveries,
    }


async def list_messages(
    conn: AsyncConnection, filters: MessageFilter, *, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns the page and the cursor of the next one (None at the end)."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if filters.type:
        if filters.type.endswith("*"):
            where.append("m.type LIKE :type ESCAPE '\\'")
            params["type"] = filters.type[:-1].replace("%", r"\%").replace("_", r"\_") + "%"
        else:
            where.append("m.type = :type")
            params["type"] = filters.type
    if filters.source:
        where.append("m.source = :source")
        params["source"] = filters.source
    if filters.endpoint_id or filters.status:
        sub = ["d.message_id = m.id"]
        if filters.endpoint_id:
            sub.append("d.endpoint_id = :endpoint")
            params["endpoint"] = filters.endpoint_id
        if filters.status:
            sub.append("d.status = :status")
            params["status"] = filters.status
        where.append(f"EXISTS (SELECT 1 FROM relay_deliveries d WHERE {' AND '.join(sub)})")
    if before is not None:
        where.append("m.seq < :before")
        params["before"] = before
    rows = (
        await conn.execute(
            text(
                "SELECT m.seq, m.id, m.type, m.source, m.created_at, m.received_at "
                f"FROM relay_messages m WHERE {' AND '.join(where)} ORDER BY m.seq DESC LIMIT :limit"
            ),
            params,
        )
    ).all()
    deliveries = await _deliveries_of(conn, [row.id for row in rows])
    page = [_message(row, deliveries[row.id]) for row in rows]
    return page, (rows[-1].seq if len(rows) == limit else None)


async def get_message(conn: AsyncConnection, message_id: str) -> dict[str, Any]:
    """The message as sent (envelope), its deliveries and every attempt."""
    row = (
        await conn.execute(
            text(
                "SELECT seq, id, type, source, created_at, received_at, body "
                "FROM relay_messages WHERE id = :id"
            ),
            {"id": message_id},
        )
    ).first()
    if row is None:
        raise NotFound(f"no message {message_id!r}", code="message_not_found")
    deliveries = await _deliveries_of(conn, [message_id])
    attempts = await conn.execute(
        text(
            "SELECT endpoint_id, attempt, attempted_at, outcome, status, latency_ms, "
            "response_body, error FROM relay_attempts WHERE message_id = :id ORDER BY id"
        ),
        {"id": message_id},
    )
    message = _message(row, deliveries[message_id])
    message["payload"] = orjson.loads(row.body)
    message["attempts"] = [
        {
            "endpoint_id": a.endpoint_id,
            "attempt": a.attempt,
            "attempted_at": iso(a.attempted_at),
            "outcome": a.outcome,
            "status": a.status,
            "latency_ms": a.latency_ms,
            "response_body": a.response_body,
            "error": a.error,
        }
        for a in attempts
    ]
    return message


_REQUEUE = (
    "status = :pending, attempts = 0, next_attempt_at = :now, delivered_at = NULL, "
    "last_status = NULL, last_error = NULL"
)


async def redeliver(
    conn: AsyncConnection, message_id: str, endpoint_id: str | None = None
) -> list[str]:
    """Send a message again (new attempts, same ``webhook-id``) to one endpoint or to every
    enabled endpoint subscribed to its type now; returns the endpoint ids."""
    # A write lock on the message (both databases), not a plain read: the retention job
    # cannot delete it between this check and the new deliveries below.
    row = (
        await conn.execute(
            text("UPDATE relay_messages SET type = type WHERE id = :id RETURNING type"),
            {"id": message_id},
        )
    ).first()
    if row is None:
        raise NotFound(f"no message {message_id!r}", code="message_not_found")
    if endpoint_id is None:
        targets = await matching_endpoints(conn, row.type)
    else:
        enabled = (
            await conn.execute(
                text("SELECT enabled FROM relay_endpoints WHERE id = :id"), {"id": endpoint_id}
            )
        ).scalar()
        if enabled is None:
            raise NotFound(f"no endpoint {endpoint_id!r}", code="endpoint_not_found")
        if not enabled:
            raise Conflict("the endpoint is disabled: enable it first", code="endpoint_disabled")
        targets = [endpoint_id]
    now = time.time()
    if targets:
        await conn.execute(
            text(
                "INSERT INTO relay_deliveries "
                "(message_id, endpoint_id, status, attempts, next_attempt_at, created_at) "
                "VALUES (:m, :e, :pending, 0, :now, :now) "
                f"ON CONFLICT (message_id, endpoint_id) DO UPDATE SET {_REQUEUE}"
            ),
            [{"m": message_id, "e": e, "pending": PENDING, "now": now} for e in targets],
        )
    return targets


async def recover(conn: AsyncConnection, endpoint_id: str, since: datetime) -> list[str]:
    """Queue again every delivery to this endpoint that failed since ``since``; the message ids."""
    enabled = (
        await conn.execute(
            text("SELECT enabled FROM relay_endpoints WHERE id = :id"), {"id": endpoint_id}
        )
    ).scalar()
    if enabled is None:
        raise NotFound(f"no endpoint {endpoint_id!r}", code="endpoint_not_found")
    if not enabled:
        raise Conflict("the endpoint is disabled: enable it first", code="endpoint_disabled")
    rows = await conn.execute(
        text(
            f"UPDATE relay_deliveries SET {_REQUEUE} WHERE endpoint_id = :e AND status = :failed "
            "AND COALESCE(last_attempt_at, created_at) >= :since RETURNING message_id"
        ),
        {
            "e": endpoint_id,
            "failed": FAILED,
            "since": since.timestamp(),
            "pending": PENDING,
            "now": time.time(),
        },
    )
    return sorted(row[0] for row in rows)
