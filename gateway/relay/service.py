"""Relay messages: ``enqueue_message`` fans out to subscribers; reads, redelivery, recovery.

Services flush, never commit: every function here writes in the caller's transaction.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.relay import metrics, store
from gateway.relay.models import SOURCES

MAX_ID_LENGTH = 255

# The channel (``Database.wake``) on which deliveries are announced to this process's senders,
# with how many were added (0: "look now", for changes already committed). Whoever commits
# an enqueue and holds the database announces it (the inbox, the processor, redelivery);
# others (notices enqueued deep in a transaction) are found by the senders' poll.
DUE = "relay.due"

# Senders in other processes (``gateway worker`` beside ``serve --no-worker``) are woken by a
# PostgreSQL notification on this channel (the payload: how many deliveries were added),
# sent on commit by the transaction that enqueued; the enqueueing statement sends it.
NOTIFY_CHANNEL = "gateway_relay"


def iso(moment: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds (``2024-05-01T12:00:00.000Z``)."""
    text_ = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    return text_.replace("+00:00", "Z")


def type_matches(patterns: Iterable[str], event_type: str) -> bool:
    """``*`` matches every type, ``invoice.*`` every ``invoice.<anything>``."""
    return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in patterns)


def envelope(message_id: str, event_type: str, source: str, created_at: float, data: Any) -> str:
    """The JSON body every subscriber receives, serialised once and stored as sent."""
    return orjson.dumps(
        {
            "id": message_id,
            "type": event_type,
            "source": source,
            "created_at": iso(created_at),
            "data": data,
        }
    ).decode()


def envelope_with_raw_data(
    message_id: str, event_type: str, source: str, created_at: float, data_json: str
) -> str:
    """``envelope`` around a JSON object that is already serialised (a provider's verified
    body, spliced as received: no parse and re-serialise on the receipt path)."""
    head = orjson.dumps(
        {"id": message_id, "type": event_type, "source": source, "created_at": iso(created_at)}
    ).decode()
    return f'{head[:-1]},"data":{data_json}}}'


@dataclass(frozen=True)
class NewMessage:
    """A message for ``enqueue_many``: ``body`` is its envelope (``envelope``); the fields
    are ``relay_messages`` columns (``store.MESSAGE_COLUMNS``, ``received_at`` aside)."""

    id: str
    type: str
    source: str
    created_at: float
    body: str


def direct_enqueue(messages: Sequence[NewMessage]) -> tuple[str, dict[str, Any]]:
    """The statement (and parameters) ``enqueue_many`` runs on PostgreSQL, for a caller on
    a direct psycopg connection, in its transaction; its one row goes to ``enqueued``."""
    return store.ENQUEUE_PG, store.enqueue_params(messages, time.time(), NOTIFY_CHANNEL)


def enqueued(messages: Sequence[NewMessage], row: Sequence[Any]) -> tuple[set[str], int]:
    """What ``direct_enqueue``'s statement stored (ids, deliveries added), counted."""
    stored, deliveries = set(row[0] or ()), int(row[1])
    _count(messages, stored)
    return stored, deliveries


def _count(messages: Sequence[NewMessage], stored: set[str]) -> None:
    for m in messages:
        if m.id in stored:
            metrics.MESSAGES_ENQUEUED.labels(source=m.source).inc()
    if len(stored) < len(messages):
        metrics.MESSAGES_DUPLICATE.inc(len(messages) - len(stored))


async def enqueue_many(
    conn: AsyncConnection, messages: Sequence[NewMessage]
) -> tuple[set[str], int]:
    """``enqueue_message`` for many messages in one statement (PostgreSQL) or one
    transaction: returns the ids stored now (the others existed) and the deliveries added.

    Runs in the caller's transaction; the caller wakes the senders after its commit
    (``database.wake(DUE).set(deliveries)``)."""
    if not messages:
        return set(), 0
    now = time.time()
    if conn.dialect.name == "postgresql":
        stored, deliveries = await store.insert_messages_pg(conn, messages, now, NOTIFY_CHANNEL)
    else:
        stored, deliveries = set(), 0
        for m in messages:
            if await store.insert_message(conn, m, now):
                endpoints = await matching_endpoints(conn, m.type)
                await store.insert_deliveries(conn, m.id, endpoints, now)
                stored.add(m.id)
                deliveries += len(endpoints)
    _count(messages, stored)
    return stored, deliveries


async def enqueue_message(
    conn: AsyncConnection,
    *,
    message_id: str,
    type: str,
    source: str,
    data: dict[str, Any],
    created_at: datetime | None = None,
) -> bool:
    """Store a message and one pending delivery per enabled endpoint whose filters match.

    Runs in the caller's transaction (no commit). Returns False, writing nothing, when a
    message with this id already exists.
    """
    message = new_message(
        message_id=message_id, type=type, source=source, data=data, created_at=created_at
    )
    stored, _ = await enqueue_many(conn, [message])
    return bool(stored)


def new_message(
    *,
    message_id: str,
    type: str,
    source: str,
    data: dict[str, Any],
    created_at: datetime | None = None,
) -> NewMessage:
    """A checked message with its envelope, for ``enqueue_many`` or ``direct_enqueue``."""
    if source not in SOURCES:
        raise ValueError(f"unknown relay source {source!r}")
    if not message_id or len(message_id) > MAX_ID_LENGTH:
        raise ValueError("message_id must be 1 to 255 characters")
    if not type or len(type) > MAX_ID_LENGTH:
        raise ValueError("type must be 1 to 255 characters")
    if created_at is not None and created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    created = created_at.timestamp() if created_at is not None else time.time()
    body = envelope(message_id, type, source, created, data)
    return NewMessage(message_id, type, source, created, body)


async def matching_endpoints(conn: AsyncConnection, event_type: str) -> list[str]:
    """Ids of the enabled endpoints subscribed to ``event_type``."""
    found = await store.enabled_filters(conn)
    return [endpoint_id for endpoint_id, patterns in found if type_matches(patterns, event_type)]
