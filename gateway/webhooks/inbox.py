"""The inbox writer: verified webhooks stored and relayed with group commit, then acknowledged.

Requests arriving while a transaction commits are written together in the next one (one
fsync for many webhooks). Each new webhook's relay message (one per webhook, its id derived
from the source and provider id) and each webhook's audit line are written in the same
transaction: a stored webhook is relayed whatever the gateway's own handlers later do.
Writer tasks are started on demand and end when the queue is empty, so the writer needs
no lifecycle of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import record_many
from gateway.db import Database
from gateway.logging import get_logger
from gateway.relay.service import DUE, NewMessage, enqueue_many, envelope_with_raw_data
from gateway.webhooks import store

log = get_logger(__name__)
# The channel (``Database.wake``) on which stored webhooks are announced to the processor.
ARRIVED = "webhooks.arrived"
MAX_GROUP = 500
LINGER_SECONDS = 0.05
WRITE_ATTEMPTS = 3


def message_id(source: str, provider_event_id: str) -> str:
    """The relay message id of an inbound webhook: the same however often it is written."""
    digest = hashlib.sha256(f"{source}\x00{provider_event_id}".encode()).hexdigest()[:32]
    return f"msg_{source}_{digest}"


def relay_message(
    source: str, provider_event_id: str, event_type: str, received_at: float, body: str
) -> NewMessage:
    """The one relay message of a verified webhook (``body``: its JSON object as received)."""
    id_ = message_id(source, provider_event_id)
    envelope = envelope_with_raw_data(id_, event_type, source, received_at, body)
    return NewMessage(id=id_, type=event_type, source=source, created_at=received_at, body=envelope)


@dataclass(frozen=True)
class Incoming:
    """A verified webhook ready to store, and its prepared audit line."""

    source: str
    provider_event_id: str
    event_type: str
    body: str
    body_sha256: str
    audit: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.provider_event_id)


@dataclass
class _Waiting:
    item: Incoming
    future: asyncio.Future[bool]


class InboxWriter:
    """``store`` returns True once the webhook is durable, False when it was already stored."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._senders = database.wake(DUE)
        self._processor = database.wake(ARRIVED)
        self._queue: list[_Waiting] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._more = asyncio.Event()
        # Two on PostgreSQL: one group is written while the previous one commits (fsync).
        self._writers = 1 if database.is_sqlite else 2

    async def store(self, item: Incoming) -> bool:
        """Store ``item`` with its audit line; wait for the commit."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(item, future))
        self._more.set()
        self._start_writer()
        return await future

    def _start_writer(self) -> None:
        if len(self._tasks) >= self._writers:
            self._tasks = {task for task in self._tasks if not task.done()}
        if len(self._tasks) < self._writers:
            # A fresh context: the writer serves many requests, not the one that woke it.
            task = asyncio.create_task(self._drain(), context=contextvars.Context())
            self._tasks.add(task)

    async def _drain(self) -> None:
        # One connection for as long as there is work: no pool checkout (and ping) per group.
        while self._queue:
            connected = False
            try:
                async with self._database.engine.connect() as conn:
                    connected = True
                    while await self._work_arrives():
                        group = self._queue[:MAX_GROUP]
                        del self._queue[:MAX_GROUP]
                        await self._write_group(conn, group)
            except Exception as exc:
                log.warning("webhooks.inbox.connection_lost", error=type(exc).__name__)
                if not connected:  # the database is unreachable: answer everyone waiting
                    waiting, self._queue = self._queue, []
                    _fail(waiting, exc)

    async def _work_arrives(self) -> bool:
        """True when there is a group to write, waiting briefly so busy writers keep their
        connection instead of returning it to the pool between groups."""
        if not self._queue:
            self._more.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._more.wait(), LINGER_SECONDS)
        return bool(self._queue)

    async def _write_group(self, conn: AsyncConnection, group: list[_Waiting]) -> None:
        try:
            stored, deliveries = await self._write_with_retry(
                conn, [waiting.item for waiting in group]
            )
        except DBAPIError as exc:
            if len(group) > 1 and not exc.connection_invalidated:
                # Something in the group was refused: write each half on its own, so the
                # error reaches only the request that caused it.
                half = len(group) // 2
                await self._write_group(conn, group[:half])
                await self._write_group(conn, group[half:])
                return
            log.error("webhooks.inbox.write_failed", error=type(exc).__name__, n=len(group))
            _fail(group, exc)
            if exc.connection_invalidated:
                raise
            return
        except Exception as exc:
            log.error("webhooks.inbox.write_failed", error=type(exc).__name__, n=len(group))
            _fail(group, exc)
            raise
        for waiting, new in zip(group, stored, strict=True):
            if not waiting.future.done():
                waiting.future.set_result(new)
        if deliveries:
            self._senders.set(deliveries)
        if any(stored):
            self._processor.set()

    async def _write_with_retry(
        self, conn: AsyncConnection, items: list[Incoming]
    ) -> tuple[list[bool], int]:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                async with conn.begin():
                    return await write(conn, items, is_postgres=self._database.is_postgres)
            except DBAPIError as exc:
                if attempt + 1 == WRITE_ATTEMPTS or not _is_transient(exc):
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")


def _fail(group: list[_Waiting], exc: Exception) -> None:
    for waiting in group:
        if not waiting.future.done():
            waiting.future.set_exception(exc)


def _is_transient(exc: DBAPIError) -> bool:
    name = type(exc.orig).__name__
    return name in ("DeadlockDetected", "SerializationFailure") or "locked" in str(exc.orig)


async def write(
    conn: AsyncConnection, items: list[Incoming], *, is_postgres: bool
) -> tuple[list[bool], int]:
    """Insert what is new (unique on key and on body hash), its relay message, and every
    item's audit line; True per item stored now, and the relay deliveries added."""
    first: dict[tuple[str, str], int] = {}
    bodies: set[tuple[str, str]] = set()
    fresh: list[Incoming] = []
    for index, item in sorted(enumerate(items), key=lambda pair: pair[1].key):
        body_key = (item.source, item.body_sha256)
        if item.key in first or body_key in bodies:
            continue
        first[item.key] = index
        bodies.add(body_key)
        fresh.append(item)
    now = time.time()
    received = [
        (item.source, item.provider_event_id, item.event_type, item.body, item.body_sha256)
        for item in fresh
    ]
    inserted = (
        await store.insert_new(conn, received, now, is_postgres=is_postgres) if fresh else set()
    )
    stored = [
        item.key in inserted and first.get(item.key) == index for index, item in enumerate(items)
    ]
    relay = [
        relay_message(item.source, item.provider_event_id, item.event_type, now, item.body)
        for item, new in zip(items, stored, strict=True)
        if new
    ]
    _, deliveries = await enqueue_many(conn, relay)
    audit = []
    for item, new in zip(items, stored, strict=True):
        line = dict(item.audit)
        line["outcome"] = "stored" if new else "duplicate"
        audit.append(line)
    await record_many(conn, audit)
    return stored, deliveries
