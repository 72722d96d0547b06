"""Relay messages after they are stored: reads, redelivery, recovery (caller's transaction)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import Conflict, NotFound
from gateway.relay import store
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
    for row in await store.deliveries_of(conn, message_ids):
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
    rows = await store.message_page(
        conn,
        type_=filters.type,
        source=filters.source,
        endpoint_id=filters.endpoint_id,
        status=filters.status,
        before=before,
        limit=limit,
    )
    deliveries = await _deliveries_of(conn, [row.id for row in rows])
    page = [_message(row, deliveries[row.id]) for row in rows]
    return page, (rows[-1].seq if len(rows) == limit else None)


async def get_message(conn: AsyncConnection, message_id: str) -> dict[str, Any]:
    """The message as sent (envelope), its deliveries and every attempt."""
    row = await store.message_row(conn, message_id)
    if row is None:
        raise NotFound(f"no message {message_id!r}", code="message_not_found")
    deliveries = await _deliveries_of(conn, [message_id])
    attempts = await store.attempts_of(conn, message_id)
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


async def redeliver(
    conn: AsyncConnection, message_id: str, endpoint_id: str | None = None
) -> list[str]:
    """Send a message again (new attempts, same ``webhook-id``) to one endpoint or to every
    enabled endpoint subscribed to its type now; returns the endpoint ids."""
    # A write lock on the message (both databases), not a plain read: the retention job
    # cannot delete it between this check and the new deliveries below.
    type_ = await store.lock_message(conn, message_id)
    if type_ is None:
        raise NotFound(f"no message {message_id!r}", code="message_not_found")
    if endpoint_id is None:
        targets = await matching_endpoints(conn, type_)
    else:
        await _enabled(conn, endpoint_id)
        targets = [endpoint_id]
    if targets:
        await store.requeue(conn, message_id, targets, time.time())
    return targets


async def _enabled(conn: AsyncConnection, endpoint_id: str) -> None:
    """404 for an unknown endpoint, 409 for a disabled one."""
    enabled = await store.endpoint_enabled(conn, endpoint_id)
    if enabled is None:
        raise NotFound(f"no endpoint {endpoint_id!r}", code="endpoint_not_found")
    if not enabled:
        raise Conflict("the endpoint is disabled: enable it first", code="endpoint_disabled")


async def recover(conn: AsyncConnection, endpoint_id: str, since: datetime) -> list[str]:
    """Queue again every delivery to this endpoint that failed since ``since``; the message ids."""
    await _enabled(conn, endpoint_id)
    found = await store.requeue_failed(conn, endpoint_id, since.timestamp(), time.time())
    return sorted(found)
