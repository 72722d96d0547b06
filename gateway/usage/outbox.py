"""The durable usage outbox: group-committed writes of accepted events.

Concurrent requests are written together: one transaction (one fsync) for everything that
arrived while the previous one was committing. A request's rows are still all-or-nothing:
when one of its keys clashes with a stored event, the rows it inserted are removed again
before the commit. Keys never repeat across requests of one group, so removing one
request's rows cannot take away a row another request counted on.

On PostgreSQL a group is first tried as one statement on a direct psycopg connection in
autocommit: the events and the audit rows in one round trip, committed together. The
statement refuses itself (a division by zero, rolling back all of it) when any of its keys
is already stored; such a group, a resend or a clash, then takes the transaction above.
The statements themselves are in ``store``.

One request's bad data never fails the others of its group. When a group's write fails
with an error one request's rows could have caused (``_row_caused``: PostgreSQL's data
and integrity errors, SQLSTATE classes 22 and 23; SQLite's integrity and data errors; a
value the driver cannot encode), the group is split in two and each half written on its
own, down to the request that fails alone: it gets ``RowsRefused`` (answered 422), every
other request commits. Other errors fail the whole group as before (bisecting a full disk
or a missing table would only repeat the failure); transient ones are retried first.
"""

from __future__ import annotations

import asyncio
import operator
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import record_many
from gateway.db import Database, DirectConnection, HeldConnection
from gateway.logging import get_logger
from gateway.meters import store as meters_store
from gateway.meters.metering import Delta
from gateway.usage import store
from gateway.usage.store import Key, OutboxRow

log = get_logger(__name__)
# The channel (``Database.wake``) on which accepted events are announced to the forwarder.
PENDING = "usage.pending"
MAX_GROUP_ROWS = 20_000


@dataclass
class Stored:
    """How a request's rows landed: ``clashes`` maps a row index to the stored payload it met."""

    duplicates: dict[int, str] = field(default_factory=dict)
    clashes: dict[int, str] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return not self.clashes


class RowsRefused(Exception):
    """The database refused this request's own rows (the rest of its group was written)."""


@dataclass
class _Request:
    rows: Sequence[OutboxRow]
    audit: dict[str, Any]
    future: asyncio.Future[Stored]
    keys: set[Key]
    meters: Sequence[Delta] = ()


class OutboxWriter:
    """Group commit for the usage outbox; ``submit`` returns once the rows are durable."""

    def __init__(self, database: Database, *, writers: int = 3) -> None:
        self._database = database
        self._queue: list[_Request] = []
        self._wakeup = asyncio.Event()
        self._inflight: set[Key] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._writers = 1 if database.is_sqlite else writers  # SQLite has one writer anyway
        self.wake = database.wake(PENDING)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(meters_store.writer_shard(os.getpid(), writer)))
            for writer in range(self._writers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(
        self, rows: Sequence[OutboxRow], audit: dict[str, Any], meters: Sequence[Delta] = ()
    ) -> Stored:
        """Store ``rows`` all-or-nothing with their audit row, and add those stored now to
        their meters (``meters``: what each row adds); wait for the commit."""
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(rows, audit, future, set(map(_row_key, rows)), meters))
        self._wakeup.set()
        return await future

    def _take_group(self) -> list[_Request]:
        group: list[_Request] = []
        keys: set[Key] = set()
        size = 0
        waiting: list[_Request] = []
        for request in self._queue:
            clash = not request.keys.isdisjoint(keys) or not request.keys.isdisjoint(self._inflight)
            if clash or (group and size + len(request.rows) > MAX_GROUP_ROWS):
                waiting.append(request)
                continue
            group.append(request)
            keys |= request.keys
            size += len(request.rows)
        self._queue = waiting
        self._inflight |= keys
        return group

    async def _run(self, shard: int) -> None:
        """One writer; what it adds to meters goes to its own rows (``shard``)."""
        held = HeldConnection(self._database.engine)
        direct = DirectConnection(self._database.url) if self._database.is_postgres else None
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                group = self._take_group()
                if not group:
                    continue
                if self._queue:
                    self._wakeup.set()
                try:
                    await self._write_with_retry(group, held, direct, shard)
                finally:
                    for request in group:
                        self._inflight -= request.keys
                    if self._queue:
                        self._wakeup.set()
        finally:
            await held.release()
            if direct is not None:
                await direct.release()

    async def _write_with_retry(
        self,
        group: list[_Request],
        held: HeldConnection,
        direct: DirectConnection | None,
        shard: int,
    ) -> None:
        """Write the group; when its data is refused, write each half on its own, down to
        the request that fails alone."""
        failure = await self._attempt(group, held, direct, shard)
        if failure is None:
            return
        if not _row_caused(failure):
            _fail(group, failure)
        elif len(group) == 1:
            _refuse(group[0], failure)
        else:
            log.warning(
                "usage.outbox.group_split", error=type(failure).__name__, requests=len(group)
            )
            half = len(group) // 2
            await self._write_with_retry(group[:half], held, direct, shard)
            await self._write_with_retry(group[half:], held, direct, shard)

    async def _attempt(
        self,
        group: list[_Request],
        held: HeldConnection,
        direct: DirectConnection | None,
        shard: int,
    ) -> Exception | None:
        """Write and answer the group (transient failures retried); the failure, if any."""
        attempts = 0
        while True:
            try:
                results = await self._store(group, held, direct, shard)
            except Exception as exc:
                await held.release()
                if direct is not None:
                    await direct.release()
                attempts += 1
                if attempts < 3 and _is_transient(exc):
                    continue
                return exc
            for request, stored in zip(group, results, strict=True):
                if not request.future.done():
                    request.future.set_result(stored)
            self.wake.set()
            return None

    async def _store(
        self,
        group: list[_Request],
        held: HeldConnection,
        direct: DirectConnection | None,
        shard: int,
    ) -> list[Stored]:
        if direct is not None and await _store_new_pg(await direct.get(), group, shard):
            return [Stored() for _ in group]
        conn = await held.get()
        async with conn.begin():
            return await self._write(conn, group, shard)

    async def _write(
        self, conn: AsyncConnection, group: list[_Request], shard: int
    ) -> list[Stored]:
        rows = _rows(group)
        now = time.time()
        if self._database.is_postgres:
            missing = await store.insert_pg(conn, rows, now)
        else:
            missing = await store.insert_sqlite(conn, rows, now)
        existing = await store.existing(conn, sorted(missing)) if missing else {}
        results = _judge(group, existing)
        doomed = [
            row.key
            for request, stored in zip(group, results, strict=True)
            if not stored.accepted
            for row in request.rows
            if row.key not in missing
        ]
        if doomed:
            await store.delete(conn, doomed)
        audit = [_audit_row(r, s) for r, s in zip(group, results, strict=True)]
        await record_many(conn, audit)
        stored_now = [
            delta
            for request, stored in zip(group, results, strict=True)
            if stored.accepted
            for delta in request.meters
            if (delta.external_subscription_id, delta.transaction_id) not in missing
        ]
        await meters_store.apply(conn, stored_now, now, shard)
        return results


_row_key = operator.itemgetter(0, 1)  # OutboxRow.key, without a property call per row


def _rows(group: list[_Request]) -> list[OutboxRow]:
    """The group's rows in key order (so that concurrent writers insert overlapping keys in
    one order and cannot deadlock)."""
    return sorted((row for request in group for row in request.rows), key=_row_key)


async def _store_new_pg(
    conn: psycopg.AsyncConnection[Any], group: list[_Request], shard: int
) -> bool:
    """Store a group whose keys are all new, and its audit rows, in one round trip; False
    (nothing stored) when any key is already stored."""
    audit = [_audit_row(request, Stored()) for request in group]
    meters = [delta for request in group for delta in request.meters]
    return await store.store_new_pg(conn, _rows(group), audit, time.time(), meters, shard)


def _fail(group: list[_Request], exc: Exception) -> None:
    log.error("usage.outbox.write_failed", error=type(exc).__name__, requests=len(group))
    for request in group:
        if not request.future.done():
            request.future.set_exception(exc)


def _refuse(request: _Request, exc: Exception) -> None:
    log.warning(
        "usage.outbox.request_refused",
        error=type(exc).__name__,
        sqlstate=_sqlstate(exc),
        rows=len(request.rows),
    )
    if not request.future.done():
        request.future.set_exception(RowsRefused(type(exc).__name__))


def _cause(exc: Exception) -> BaseException:
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc


def _sqlstate(exc: Exception) -> str | None:
    cause = _cause(exc)
    return cause.sqlstate if isinstance(cause, psycopg.Error) else None


def _row_caused(exc: Exception) -> bool:
    """Could one request's rows have caused this: data the database or its driver refuses
    (a NUL in text, a value out of range, a NOT NULL or CHECK violation)?"""
    cause = _cause(exc)
    if isinstance(cause, psycopg.Error):
        return (cause.sqlstate or "").startswith(("22", "23"))
    # orjson.JSONEncodeError is a TypeError, UnicodeEncodeError a ValueError.
    row_errors = (sqlite3.IntegrityError, sqlite3.DataError, TypeError, ValueError, OverflowError)
    return isinstance(cause, row_errors)


def _is_transient(exc: Exception) -> bool:
    """Worth another try on a fresh connection: the connection died (a database restart or
    failover), a deadlock or serialization failure, SQLite busy."""
    cause: BaseException | None = exc
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        cause = exc.orig
    if isinstance(cause, psycopg.Error):
        state = cause.sqlstate or "08"  # none: the client lost the connection
        return state.startswith(("08", "57P", "40"))
    return "locked" in str(cause)


def _judge(group: list[_Request], existing: dict[Key, tuple[str, str]]) -> list[Stored]:
    results = []
    for request in group:
        stored = Stored()
        for index, row in enumerate(request.rows):
            found = existing.get(row.key)
            if found is None:
                continue
            fingerprint, payload = found
            if fingerprint == row.fingerprint:
                stored.duplicates[index] = payload
            else:
                stored.clashes[index] = payload
        results.append(stored)
    return results


def _audit_row(request: _Request, stored: Stored) -> dict[str, Any]:
    row = dict(request.audit)
    if request.rows:
        row["outcome"] = "accepted" if stored.accepted else "rejected"
        row["status"] = 200 if stored.accepted else 422
        detail = dict(row.get("detail") or {})
        detail.update(events=len(request.rows), duplicates=len(stored.duplicates))
        row["detail"] = detail
    return row


__all__ = ["OutboxRow", "OutboxWriter", "RowsRefused", "Stored"]
