"""The statements of the usage outbox: what one group commit sends to the database.

Rows come as ``(row, actor)`` pairs; PostgreSQL gets them as one JSON parameter
(``json_to_recordset``), since psycopg dumps arrays element by element in Python and JSON in C.
SQLite gets multi-row VALUES in chunks of ``SQLITE_CHUNK``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import bulk_insert_sql
from gateway.usage.models import PENDING

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


Pair = tuple[OutboxRow, str]  # a row and the key name that sent it

_COLUMNS = (
    "external_subscription_id, transaction_id, code, payload, fingerprint, needs_check, "
    "accepted_by, status, attempts, accepted_at, next_attempt_at"
)


def _insert_events_sql(returning: str) -> str:
    """CTEs ``u`` (the rows of ``%(rows)s``) and ``ins`` (those inserted, ``RETURNING``)."""
    return (
        "WITH u AS (SELECT * FROM json_to_recordset(%(rows)s::json) "
        "AS u(s text, t text, c text, p text, f text, n int, a text)), "
        f"ins AS (INSERT INTO usage_events ({_COLUMNS}) "
        "SELECT s, t, c, p, f, n, a, %(status)s, 0, %(now)s, %(now)s FROM u "
        "ON CONFLICT (external_subscription_id, transaction_id) DO NOTHING "
        f"RETURNING {returning})"
    )


_INSERT_PG_SQL = (
    _insert_events_sql("external_subscription_id AS s, transaction_id AS t")
    + " SELECT u.s, u.t FROM u LEFT JOIN ins ON ins.s = u.s AND ins.t = u.t WHERE ins.s IS NULL"
)
# Events and audit rows together; the division by zero fails the whole statement (and so
# rolls back every insert in it) when fewer events were inserted than given.
_STORE_NEW_SQL = (
    _insert_events_sql("1")
    + f", audit AS ({bulk_insert_sql('audit')}) "
    + "SELECT 1 / ((SELECT count(*) FROM ins) = (SELECT count(*) FROM u))::int"
)


def _rows_json(pairs: Sequence[Pair]) -> str:
    return orjson.dumps(
        [
            {
                "s": r.external_subscription_id,
                "t": r.transaction_id,
                "c": r.code,
                "p": r.payload,
                "f": r.fingerprint,
                "n": int(r.needs_check),
                "a": actor,
            }
            for r, actor in pairs
        ]
    ).decode()


async def store_new_pg(
    conn: psycopg.AsyncConnection[Any],
    pairs: Sequence[Pair],
    audit: list[dict[str, Any]],
    now: float,
) -> bool:
    """Store rows whose keys are all new, and their audit rows, in one autocommitted
    statement; False (nothing stored) when any key is already stored."""
    params = {
        "rows": _rows_json(pairs),
        "audit": orjson.dumps(audit).decode(),
        "status": PENDING,
        "now": now,
    }
    try:
        await conn.execute(_STORE_NEW_SQL, params)
    except psycopg.errors.DivisionByZero:
        return False
    return True


async def insert_pg(conn: AsyncConnection, pairs: Sequence[Pair], now: float) -> set[Key]:
    """Insert the rows; return the keys that were not inserted (already stored)."""
    params = {"rows": _rows_json(pairs), "status": PENDING, "now": now}
    result = await conn.exec_driver_sql(_INSERT_PG_SQL, params)
    found: list[Any] = list(result.all())
    return {(row[0], row[1]) for row in found}


async def insert_sqlite(conn: AsyncConnection, pairs: Sequence[Pair], now: float) -> set[Key]:
    """Insert the rows; return the keys that were not inserted (already stored)."""
    inserted: set[Key] = set()
    for start in range(0, len(pairs), SQLITE_CHUNK):
        chunk = pairs[start : start + SQLITE_CHUNK]
        values = ",".join(["(?,?,?,?,?,?,?,?,0,?,?)"] * len(chunk))
        params: list[Any] = []
        for row, actor in chunk:
            params += [row.external_subscription_id, row.transaction_id, row.code, row.payload]
            params += [row.fingerprint, int(row.needs_check), actor, PENDING, now, now]
        sql = (
            f"INSERT INTO usage_events ({_COLUMNS}) VALUES {values} "
            "ON CONFLICT (external_subscription_id, transaction_id) DO NOTHING "
            "RETURNING external_subscription_id, transaction_id"
        )
        result = await conn.exec_driver_sql(sql, tuple(params))
        found: list[Any] = list(result.all())
        inserted.update((row[0], row[1]) for row in found)
    return {row.key for row, _ in pairs} - inserted


def _keys_in(chunk: Sequence[Key]) -> tuple[str, dict[str, str]]:
    """``(external_subscription_id, transaction_id) IN (VALUES …)`` and its parameters."""
    placeholders = ",".join(f"(:s{i}, :t{i})" for i in range(len(chunk)))
    params: dict[str, str] = {}
    for i, (sub, tx) in enumerate(chunk):
        params[f"s{i}"], params[f"t{i}"] = sub, tx
    return f"(external_subscription_id, transaction_id) IN (VALUES {placeholders})", params


async def existing(conn: AsyncConnection, keys: list[Key]) -> dict[Key, tuple[str, str]]:
    """The stored ``(fingerprint, payload)`` of each of ``keys`` that is stored."""
    found: dict[Key, tuple[str, str]] = {}
    for start in range(0, len(keys), SQLITE_CHUNK):
        condition, params = _keys_in(keys[start : start + SQLITE_CHUNK])
        result = await conn.execute(
            text(
                "SELECT external_subscription_id, transaction_id, fingerprint, payload "
                f"FROM usage_events WHERE {condition}"
            ),
            params,
        )
        found.update({(s, t): (f, p) for s, t, f, p in result.all()})
    return found


async def delete(conn: AsyncConnection, keys: list[Key]) -> None:
    """Take back rows this transaction inserted for a request that is refused after all."""
    for start in range(0, len(keys), SQLITE_CHUNK):
        condition, params = _keys_in(keys[start : start + SQLITE_CHUNK])
        await conn.execute(text(f"DELETE FROM usage_events WHERE {condition}"), params)
