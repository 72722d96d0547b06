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
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
import psycopg
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.models import AuditEntry
from gateway.audit.service import record_many
from gateway.db import Database, DirectConnection, HeldConnection
from gateway.logging import get_logger
from gateway.usage.models import DEAD, FORWARDED, PENDING

log = get_logger(__name__)
MAX_GROUP_ROWS = 20_000
SQLITE_CHUNK = 400

Key = tuple[str, str]


class OutboxRow(NamedTuple):
    """One event ready to store: the exact payload Lago will receive, and its fingerprint."""

    external_subscription_id: str
    transaction_id: str
    code: str
    payload: str
    fingerprint: str
    needs_check: bool = False

    @property
    def key(self) -> Key:
        return (self.external_subscription_id, self.transaction_id)


@dataclass
class Stored:
    """How a request's rows landed: ``clashes`` maps a row index to the stored payload it clashed with."""

    duplicates: dict[int, str] = field(default_factory=dict)
    clashes: dict[int, str] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return not self.clashes


@dataclass
class _Request:
    rows: Sequence[OutboxRow]
    actor: str
    audit: dict[str, Any]
    future: asyncio.Future[Stored]
    keys: set[Key]


class OutboxWriter:
    """Group commit for the usage outbox; ``submit`` returns once the rows are durable."""

    def __init__(self, database: Database, *, writers: int = 3) -> None:
        self._database = database
        self._queue: list[_Request] = []
        self._wakeup = asyncio.Event()
        self._inflight: set[Key] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._writers = 1 if database.is_sqlite else writers  # SQLite has one writer anyway
        self.new_events = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self._writers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, rows: Sequence[OutboxRow], actor: str, audit: dict[str, Any]) -> Stored:
        """Store ``rows`` all-or-nothing with their audit row; wait for the commit."""
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(rows, actor, audit, future, set(map(_row_key, rows))))
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

    async def _run(self) -> None:
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
                    await self._write_with_retry(group, held, direct)
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
        self, group: list[_Request], held: HeldConnection, direct: DirectConnection | None
    ) -> None:
        for attempt in range(3):
            try:
                results = await self._store(group, held, direct)
            except Exception as exc:
                await held.release()
                if direct is not None:
                    await direct.release()
                if attempt < 2 and _is_transient(exc):
                    continue
                _fail(group, exc)
                return
            for request, stored in zip(group, results, strict=True):
                if not request.future.done():
                    request.future.set_result(stored)
            self.new_events.set()
            return

    async def _store(
        self, group: list[_Request], held: HeldConnection, direct: DirectConnection | None
    ) -> list[Stored]:
        if direct is not None and await _store_new_pg(await direct.get(), group):
            return [Stored() for _ in group]
        conn = await held.get()
        async with conn.begin():
            return await self._write(conn, group)

    async def _write(self, conn: AsyncConnection, group: list[_Request]) -> list[Stored]:
        rows = sorted(
            ((row, i) for i, request in enumerate(group) for row in request.rows),
            key=_pair_key,
        )
        now = time.time()
        if self._database.is_postgres:
            missing = await _insert_pg(conn, rows, group, now)
        else:
            missing = await _insert_sqlite(conn, rows, group, now)
        existing = await _existing(conn, sorted(missing)) if missing else {}
        results = _judge(group, existing)
        doomed = [
            row.key
            for request, stored in zip(group, results, strict=True)
            if not stored.accepted
            for row in request.rows
            if row.key not in missing
        ]
        if doomed:
            await _delete(conn, doomed)
        audit = [_audit_row(r, s) for r, s in zip(group, results, strict=True)]
        if self._database.is_postgres:
            await _record_audit_pg(conn, audit)
        else:
            await record_many(conn, audit)
        return results


def _audit_sql() -> str:
    """One INSERT for a group's audit rows, from one JSON parameter (columns from the model)."""
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    columns = [column for column in table.columns if column.name != "id"]
    names = ", ".join(column.name for column in columns)
    types = ", ".join(f"{column.name} {column.type.compile(dialect=dialect)}" for column in columns)
    return (
        f"INSERT INTO {table.name} ({names}) "
        f"SELECT {names} FROM json_to_recordset(%(rows)s::json) AS r({types})"
    )


_AUDIT_SQL = _audit_sql()


async def _record_audit_pg(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """The audit rows of a group (one per request) in one statement.

    ``record_many`` is an executemany: with one row per single-event request it cost more
    than storing the events themselves.
    """
    await conn.exec_driver_sql(_AUDIT_SQL, {"rows": orjson.dumps(rows).decode()})


_row_key = operator.itemgetter(0, 1)  # OutboxRow.key, without a property call per row


def _pair_key(pair: tuple[OutboxRow, int]) -> Key:
    row = pair[0]
    return (row[0], row[1])


def _fail(group: list[_Request], exc: Exception) -> None:
    log.error("usage.outbox.write_failed", error=type(exc).__name__, requests=len(group))
    for request in group:
        if not request.future.done():
            request.future.set_exception(exc)


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


_COLUMNS = (
    "external_subscription_id, transaction_id, code, payload, fingerprint, needs_check, "
    "accepted_by, status, attempts, accepted_at, next_attempt_at"
)


def _store_new_sql() -> str:
    """Events and audit rows in one statement, which fails whole if a key is already stored."""
    return (
        "WITH u AS (SELECT * FROM json_to_recordset(%(rows)s::json) "
        "AS u(s text, t text, c text, p text, f text, n int, a text)), "
        f"ins AS (INSERT INTO usage_events ({_COLUMNS}) "
        "SELECT s, t, c, p, f, n, a, %(status)s, 0, %(now)s, %(now)s FROM u "
        "ON CONFLICT (external_subscription_id, transaction_id) DO NOTHING RETURNING 1), "
        f"audit AS ({_AUDIT_SQL.replace('%(rows)s', '%(audit)s')}) "
        "SELECT 1 / ((SELECT count(*) FROM ins) = (SELECT count(*) FROM u))::int"
    )


async def _store_new_pg(conn: psycopg.AsyncConnection[Any], group: list[_Request]) -> bool:
    """Store a group whose keys are all new, and its audit rows, in one round trip; False
    (nothing stored) when any key is already stored."""
    rows = sorted(
        ((row, i) for i, request in enumerate(group) for row in request.rows), key=_pair_key
    )
    audit = [_audit_row(request, Stored()) for request in group]
    params = {
        "rows": _rows_json(rows, group),
        "audit": orjson.dumps(audit).decode(),
        "status": PENDING,
        "now": time.time(),
    }
    try:
        await conn.execute(_STORE_NEW_SQL, params)
    except psycopg.errors.DivisionByZero:
        return False
    return True


async def _insert_pg(
    conn: AsyncConnection, rows: list[tuple[OutboxRow, int]], group: list[_Request], now: float
) -> set[Key]:
    """Insert the rows; return the keys that were not inserted (already stored)."""
    sql = (
        "WITH u AS (SELECT * FROM json_to_recordset(%(rows)s::json) "
        "AS u(s text, t text, c text, p text, f text, n int, a text)), "
        f"ins AS (INSERT INTO usage_events ({_COLUMNS}) "
        "SELECT s, t, c, p, f, n, a, %(status)s, 0, %(now)s, %(now)s FROM u "
        "ON CONFLICT (external_subscription_id, transaction_id) DO NOTHING "
        "RETURNING external_subscription_id AS s, transaction_id AS t) "
        "SELECT u.s, u.t FROM u LEFT JOIN ins ON ins.s = u.s AND ins.t = u.t WHERE ins.s IS NULL"
    )
    data = _rows_json(rows, group)
    result = await conn.exec_driver_sql(sql, {"rows": data, "status": PENDING, "now": now})
    found: list[Any] = list(result.all())
    return {(row[0], row[1]) for row in found}


def _rows_json(rows: list[tuple[OutboxRow, int]], group: list[_Request]) -> str:
    # One JSON parameter: psycopg dumps arrays element by element in Python, JSON in C.
    return orjson.dumps(
        [
            {
                "s": r.external_subscription_id,
                "t": r.transaction_id,
                "c": r.code,
                "p": r.payload,
                "f": r.fingerprint,
                "n": int(r.needs_check),
                "a": group[i].actor,
            }
            for r, i in rows
        ]
    ).decode()


_STORE_NEW_SQL = _store_new_sql()


async def _insert_sqlite(
    conn: AsyncConnection, rows: list[tuple[OutboxRow, int]], group: list[_Request], now: float
) -> set[Key]:
    """Insert the rows; return the keys that were not inserted (already stored)."""
    inserted: set[Key] = set()
    for start in range(0, len(rows), SQLITE_CHUNK):
        chunk = rows[start : start + SQLITE_CHUNK]
        values = ",".join(["(?,?,?,?,?,?,?,?,0,?,?)"] * len(chunk))
        params: list[Any] = []
        for row, i in chunk:
            params += [row.external_subscription_id, row.transaction_id, row.code, row.payload]
            params += [row.fingerprint, int(row.needs_check), group[i].actor, PENDING, now, now]
        sql = (
            f"INSERT INTO usage_events ({_COLUMNS}) VALUES {values} "
            "ON CONFLICT (external_subscription_id, transaction_id) DO NOTHING "
            "RETURNING external_subscription_id, transaction_id"
        )
        result = await conn.exec_driver_sql(sql, tuple(params))
        found: list[Any] = list(result.all())
        inserted.update((row[0], row[1]) for row in found)
    return {row.key for row, _ in rows} - inserted


async def _existing(conn: AsyncConnection, keys: list[Key]) -> dict[Key, tuple[str, str]]:
    found: dict[Key, tuple[str, str]] = {}
    for start in range(0, len(keys), SQLITE_CHUNK):
        chunk = keys[start : start + SQLITE_CHUNK]
        placeholders = ",".join(f"(:s{i}, :t{i})" for i in range(len(chunk)))
        params: dict[str, str] = {}
        for i, (sub, tx) in enumerate(chunk):
            params[f"s{i}"], params[f"t{i}"] = sub, tx
        result = await conn.execute(
            text(
                "SELECT external_subscription_id, transaction_id, fingerprint, payload "
                f"FROM usage_events WHERE (external_subscription_id, transaction_id) IN "
                f"(VALUES {placeholders})"
            ),
            params,
        )
        found.update({(s, t): (f, p) for s, t, f, p in result.all()})
    return found


async def _delete(conn: AsyncConnection, keys: list[Key]) -> None:
    """Take back rows this transaction inserted for a request that is refused after all."""
    for start in range(0, len(keys), SQLITE_CHUNK):
        chunk = keys[start : start + SQLITE_CHUNK]
        placeholders = ",".join(f"(:s{i}, :t{i})" for i in range(len(chunk)))
        params: dict[str, str] = {}
        for i, (sub, tx) in enumerate(chunk):
            params[f"s{i}"], params[f"t{i}"] = sub, tx
        await conn.execute(
            text(
                "DELETE FROM usage_events WHERE (external_subscription_id, transaction_id) IN "
                f"(VALUES {placeholders})"
            ),
            params,
        )


__all__ = ["DEAD", "FORWARDED", "PENDING", "OutboxRow", "OutboxWriter", "Stored"]
