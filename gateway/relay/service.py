"""Relay messages: ``enqueue_message`` fans out to subscribers; reads, redelivery, recovery.

Services flush, never commit: every function here writes in the caller's transaction.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.relay import metrics
from gateway.relay.models import PENDING, SOURCES

MAX_ID_LENGTH = 255

# Senders running in this process register here; enqueueing wakes them at once, telling
# how many deliveries it added (0: "look now", for changes already committed).
Wakeup = Callable[[int], None]
_wakeups: set[Wakeup] = set()


def subscribe_wakeup(wakeup: Wakeup) -> None:
    _wakeups.add(wakeup)


def unsubscribe_wakeup(wakeup: Wakeup) -> None:
    _wakeups.discard(wakeup)


# Senders in other processes (``gateway worker`` beside ``serve --no-worker``) are woken by a
# PostgreSQL notification on this channel, sent on commit by the transaction that enqueued.
NOTIFY_CHANNEL = "gateway_relay"


async def notify_other_processes(conn: AsyncConnection, deliveries: int) -> None:
    """In the caller's transaction (PostgreSQL): tell every listening sender, on commit, that
    ``deliveries`` were added (the payload)."""
    if deliveries and conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(
            "SELECT pg_notify(%(channel)s, %(n)s)",
            {"channel": NOTIFY_CHANNEL, "n": str(deliveries)},
        )


def wake_senders(deliveries: int = 0) -> None:
    """Tell in-process senders that deliveries are (about to be) due."""
    for wakeup in list(_wakeups):
        wakeup(deliveries)


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
    """A message for ``enqueue_many``: ``body`` is its envelope (``envelope``)."""

    id: str
    type: str
    source: str
    created_at: float
    body: str


async def enqueue_many(
    conn: AsyncConnection, messages: Sequence[NewMessage]
) -> tuple[set[str], int]:
    """``enqueue_message`` for many messages in one statement (PostgreSQL) or one
    transaction: returns the ids stored now (the others existed) and the deliveries added.

    Runs in the caller's transaction; the caller wakes the senders after its commit
    (``wake_senders``)."""
    if not messages:
        return set(), 0
    now = time.time()
    if conn.dialect.name == "postgresql":
        rows = orjson.dumps([(m.id, m.type, m.source, m.created_at, m.body) for m in messages])
        params = {"rows": rows.decode(), "now": now, "pending": PENDING}
        found: Any = (await conn.exec_driver_sql(_ENQUEUE_MANY_PG, params)).one()
        stored, deliveries = set(found[0] or ()), int(found[1])
    else:
        stored, deliveries = set(), 0
        for m in messages:
            new, added = await _enqueue(conn, m.id, m.type, m.source, m.created_at, now, m.body)
            if new:
                stored.add(m.id)
                deliveries += added
    await notify_other_processes(conn, deliveries)
    for m in messages:
        if m.id in stored:
            metrics.MESSAGES_ENQUEUED.labels(source=m.source).inc()
    if len(stored) < len(messages):
        metrics.MESSAGES_DUPLICATE.inc(len(messages) - len(stored))
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
    stored, deliveries = await enqueue_many(
        conn, [NewMessage(message_id, type, source, created, body)]
    )
    if deliveries:
        # Before the caller's commit: senders look again shortly until they find them.
        wake_senders(deliveries)
    return bool(stored)


# One statement for all the messages, then a delivery per enabled endpoint whose patterns
# match (``*`` becomes LIKE's ``%``, ``_`` is escaped; the same rule as ``type_matches``).
_ENQUEUE_MANY_PG = (
    "WITH r AS (SELECT r->>0 AS id, r->>1 AS type, r->>2 AS source, (r->>3)::float8 AS created, "
    "r->>4 AS body FROM json_array_elements(%(rows)s::json) AS r), "
    "m AS (INSERT INTO relay_messages (id, type, source, created_at, received_at, body) "
    "SELECT id, type, source, created, %(now)s, body FROM r "
    "ON CONFLICT (id) DO NOTHING RETURNING id, type), "
    "d AS (INSERT INTO relay_deliveries "
    "(message_id, endpoint_id, status, attempts, next_attempt_at, created_at) "
    "SELECT m.id, e.id, %(pending)s, 0, %(now)s, %(now)s FROM m CROSS JOIN relay_endpoints e "
    "WHERE e.enabled AND EXISTS (SELECT 1 FROM json_array_elements_text(e.filter_types::json) "
    "AS f(p) WHERE m.type LIKE replace(replace(f.p, '_', '\\_'), '*', '%%')) RETURNING 1) "
    "SELECT (SELECT array_agg(id) FROM m), (SELECT count(*) FROM d)"
)


async def _enqueue(
    conn: AsyncConnection,
    message_id: str,
    type_: str,
    source: str,
    created: float,
    now: float,
    body: str,
) -> tuple[bool, int]:
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO relay_messages (id, type, source, created_at, received_at, body) "
                "VALUES (:id, :type, :source, :created, :now, :body) "
                "ON CONFLICT (id) DO NOTHING RETURNING seq"
            ),
            {
                "id": message_id,
                "type": type_,
                "source": source,
                "created": created,
                "now": now,
                "body": body,
            },
        )
    ).first()
    if inserted is None:
        return False, 0
    endpoints = await matching_endpoints(conn, type_)
    if endpoints:
        await conn.execute(
            text(
                "INSERT INTO relay_deliveries "
                "(message_id, endpoint_id, status, attempts, next_attempt_at, created_at) "
                "VALUES (:m, :e, :s, 0, :now, :now)"
            ),
            [{"m": message_id, "e": ep, "s": PENDING, "now": now} for ep in endpoints],
        )
    return True, len(endpoints)


async def matching_endpoints(conn: AsyncConnection, event_type: str) -> list[str]:
    """Ids of the enabled endpoints subscribed to ``event_type``."""
    rows = (
        await conn.execute(
            text("SELECT id, filter_types FROM relay_endpoints WHERE enabled = :yes ORDER BY id"),
            {"yes": True},
        )
    ).all()
    return [row[0] for row in rows if type_matches(orjson.loads(row[1]), event_type)]
