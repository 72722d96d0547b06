"""Acceptance: the group-commit writer's (``outbox``) statements, which store new events and
find or take back the ones already stored.

New rows reach PostgreSQL as one JSON parameter (``json_to_recordset``, keys and types from
the model): psycopg dumps arrays element by element in Python and JSON in C. SQLite gets
multi-row VALUES in chunks of ``SQLITE_CHUNK``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.store import bulk_insert_sql
from gateway.meters.metering import Delta
from gateway.meters.store import PG_METER_CTES, PG_METER_CTES_IF_INSERTED, deltas_json
from gateway.usage.models import PENDING
from gateway.usage.store.rows import TABLE, Key, OutboxRow

SQLITE_CHUNK = 400

# What a new row gets beside its own fields: pending, untried, due now.
_NEW_STATE = ("status", "attempts", "accepted_at", "next_attempt_at")
_INSERTED = ", ".join((*OutboxRow._fields, *_NEW_STATE))
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_RECORD = ", ".join(
    f"{name} {TABLE.columns[name].type.compile(dialect=_PG)}" for name in OutboxRow._fields
)


def _insert_events_sql(returning: str) -> str:
    """CTEs ``u`` (the rows of ``%(rows)s``) and ``ins`` (those inserted, ``RETURNING``)."""
    own = ", ".join(OutboxRow._fields)
    return (
        f"WITH u AS (SELECT * FROM json_to_recordset(%(rows)s::json) AS u({_RECORD})), "
        f"ins AS (INSERT INTO usage_events ({_INSERTED}) "
        f"SELECT {own}, %(status)s, 0, %(now)s, %(now)s FROM u "
        "ON CONFLICT (external_subscription_id, transaction_id) DO NOTHING "
        f"RETURNING {returning})"
    )


_INSERT_PG_SQL = _insert_events_sql("external_subscription_id, transaction_id") + (
    " SELECT u.external_subscription_id, u.transaction_id FROM u LEFT JOIN ins"
    " ON ins.external_subscription_id = u.external_subscription_id"
    " AND ins.transaction_id = u.transaction_id WHERE ins.transaction_id IS NULL"
)
# Events and audit rows together; the division by zero fails the whole statement (and so
# rolls back every insert in it) when fewer events were inserted than given.
_ALL_NEW = "SELECT 1 / ((SELECT count(*) FROM ins) = (SELECT count(*) FROM u))::int"
_STORE_NEW_SQL = _insert_events_sql("1") + f", audit AS ({bulk_insert_sql('audit')}) " + _ALL_NEW
# The same, adding the events to their meters: every row is new when the statement stands.
_STORE_NEW_METERED_SQL = (
    _insert_events_sql("1")
    + f", audit AS ({bulk_insert_sql('audit')}), {PG_METER_CTES} "
    + _ALL_NEW
)
# One event unless its key is stored, added to its meters only if inserted (a capture).
_ACCEPT_METERED_SQL = (
    _insert_events_sql("1") + f", {PG_METER_CTES_IF_INSERTED} SELECT count(*) FROM ins"
)
_INSERT_SQLITE_ROW = "(" + ",".join("?" * len(OutboxRow._fields)) + ",?,0,?,?)"


def _rows_json(rows: Sequence[OutboxRow]) -> str:
    return orjson.dumps([row._asdict() for row in rows]).decode()


async def store_new_pg(
    conn: psycopg.AsyncConnection[Any],
    rows: Sequence[OutboxRow],
    audit: list[dict[str, Any]],
    now: float,
    meters: Sequence[Delta] = (),
    shard: int = 1,
) -> bool:
    """Store rows whose keys are all new, their audit rows and what they add to meters, in
    one autocommitted statement (meters on the writer's ``shard``); False (nothing stored)
    when any key is already stored."""
    params = {
        "rows": _rows_json(rows),
        "audit": orjson.dumps(audit).decode(),
        "status": PENDING,
        "now": now,
    }
    sql = _STORE_NEW_SQL
    if meters:
        sql = _STORE_NEW_METERED_SQL
        params["meters"] = deltas_json(meters)
        params["shard"] = shard
    try:
        await conn.execute(sql, params)
    except psycopg.errors.DivisionByZero:
        return False
    return True


def direct_accept(
    rows: Sequence[OutboxRow], now: float, meters: Sequence[Delta], shard: int
) -> tuple[str, dict[str, Any]]:
    """The statement (and parameters) that inserts the rows not stored yet and adds, for
    those only, ``meters`` to the meters' ``shard`` rows; its one value: how many were
    inserted. For a caller on a direct psycopg connection, in its transaction."""
    params = {
        "rows": _rows_json(rows),
        "status": PENDING,
        "now": now,
        "meters": deltas_json(meters),
        "shard": shard,
    }
    return _ACCEPT_METERED_SQL, params


async def insert_pg(conn: AsyncConnection, rows: Sequence[OutboxRow], now: float) -> set[Key]:
    """Insert the rows; return the keys that were not inserted (already stored)."""
    params = {"rows": _rows_json(rows), "status": PENDING, "now": now}
    result = await conn.exec_driver_sql(_INSERT_PG_SQL, params)
    found: list[Any] = list(result.all())
    return {(row[0], row[1]) for row in found}


async def insert_sqlite(conn: AsyncConnection, rows: Sequence[OutboxRow], now: float) -> set[Key]:
    """Insert the rows; return the keys that were not inserted (already stored)."""
    inserted: set[Key] = set()
    for start in range(0, len(rows), SQLITE_CHUNK):
        chunk = rows[start : start + SQLITE_CHUNK]
        params: list[Any] = []
        for row in chunk:
            params += row
            params += (PENDING, now, now)
        sql = (
            f"INSERT INTO usage_events ({_INSERTED}) "
            f"VALUES {','.join([_INSERT_SQLITE_ROW] * len(chunk))} "
            "ON CONFLICT (external_subscription_id, transaction_id) DO NOTHING "
            "RETURNING external_subscription_id, transaction_id"
        )
        result = await conn.exec_driver_sql(sql, tuple(params))
        found: list[Any] = list(result.all())
        inserted.update((row[0], row[1]) for row in found)
    return {row.key for row in rows} - inserted


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
