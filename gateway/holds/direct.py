"""The holds' PostgreSQL statements, for ``pipelined`` (a direct psycopg connection in
pipeline mode: two round trips a hold, capture or release).

The first round trip sends BEGIN, the lock of the customer's token account (an upsert that
returns the account) and what the decision reads, as a statement of its own: under READ
COMMITTED each statement takes its snapshot when it starts, so the reads see everything
committed by whoever held the lock before. The second sends every write (the hold row, the
meters' reservations, a capture's outbox row and meter deltas, the audit row, the relay
message) and COMMIT. Statements travel with the extended protocol, so psycopg prepares
them on the server after a few runs: sent as one simple query with parameters bound on the
client instead, the gateway's CPU per hold + capture fell by a third, PostgreSQL's nearly
doubled (every statement parsed and planned again), and fewer pairs a second were served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from gateway.audit.service import direct_record
from gateway.db import pyformat
from gateway.holds import store
from gateway.holds.models import HELD
from gateway.meters import account_store as accounts
from gateway.meters import store as meters_store
from gateway.meters.metering import TOTAL
from gateway.meters.store import HOLD_SHARD, combine
from gateway.relay.service import NewMessage, direct_enqueue, enqueued

# The statements the SQLAlchemy path runs too (its ``:name`` style made psycopg's).
LOCK = pyformat(accounts.LOCK_ACCOUNT)
HOLD_BY_ID = pyformat(store.SELECT_BY_ID)
INSERT = pyformat(store.INSERT)
ADD_HELD = pyformat(meters_store.ADD_HELD)
SET_HELD_TOKENS = pyformat(accounts.SET_HELD_TOKENS)
SETTLE = pyformat(store.SETTLE)
# The account of a hold's customer, locked (no row: no such hold).
LOCK_OF_HOLD = (
    "INSERT INTO meter_accounts (external_customer_id, credits, held_tokens, touched_at) "
    "SELECT external_customer_id, '0', '0', %(now)s FROM holds WHERE id = %(id)s "
    "ON CONFLICT (external_customer_id) DO UPDATE SET touched_at = excluded.touched_at "
    f"RETURNING {accounts.ACCOUNT_COLUMNS}"
)
# What a new hold decides on: the hold already made for this key, the period's meters (rows
# of every shard), whether a unique-count value was counted already.
HOLD_READ = (
    "SELECT (SELECT row_to_json(h) FROM ("
    f"SELECT {', '.join(store.COLUMNS)} FROM holds "
    "WHERE external_subscription_id = %(s)s AND transaction_id = %(t)s) h), "
    "(SELECT coalesce(json_agg(m), '[]') FROM (SELECT metric, group_key, aggregation, units, "
    "events, latest_at, held, updated_at FROM usage_meters "
    "WHERE external_subscription_id = %(s)s AND period_start = %(p)s) m), "
    "EXISTS (SELECT 1 FROM usage_meter_values WHERE external_subscription_id = %(s)s "
    "AND metric = %(m)s AND period_start = %(p)s AND group_key = '' AND value = %(v)s)"
)


async def lock(
    conn: psycopg.AsyncConnection[Any], sql: str, params: Mapping[str, Any]
) -> psycopg.AsyncCursor[dict[str, Any]]:
    """Queue the account lock; its row is read once the pipeline syncs."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(sql, params)
    return cursor


async def read_for_hold(
    conn: psycopg.AsyncConnection[Any],
    subscription: str,
    transaction_id: str,
    code: str,
    period_start: float,
    distinct: str | None,
) -> psycopg.AsyncCursor[Any]:
    """Queue ``HOLD_READ``; ``hold_facts`` reads its row."""
    cursor = conn.cursor()
    params = {"s": subscription, "t": transaction_id, "m": code, "p": period_start, "v": distinct}
    await cursor.execute(HOLD_READ, params)
    return cursor


async def hold_facts(
    cursor: psycopg.AsyncCursor[Any],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """The existing hold (or None), the period's meters (shards combined), value seen."""
    row = await cursor.fetchone()
    assert row is not None
    found, meters, seen = row
    return found, combine(meters), bool(seen)


async def read_hold(
    conn: psycopg.AsyncConnection[Any], hold_id: str
) -> psycopg.AsyncCursor[dict[str, Any]]:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(HOLD_BY_ID, {"id": hold_id})
    return cursor


async def add_held(
    conn: psycopg.AsyncConnection[Any], row: Mapping[str, Any], aggregation: str, held: float,
    now: float,
) -> None:  # fmt: skip
    """Reserve (negative: return) ``held`` units on the hold's meter (the holds' shard)."""
    params = {
        "s": row["external_subscription_id"],
        "m": row["code"],
        "p": row["period_start"],
        "g": TOTAL,
        "sh": HOLD_SHARD,
        "a": aggregation,
        "h": held,
        "now": now,
    }
    await conn.execute(ADD_HELD, params)


async def set_held_tokens(conn: psycopg.AsyncConnection[Any], customer: str, held: str) -> None:
    await conn.execute(SET_HELD_TOKENS, {"h": held, "c": customer})


async def insert(conn: psycopg.AsyncConnection[Any], row: Mapping[str, Any]) -> None:
    await conn.execute(INSERT, {name: row.get(name) for name in store.COLUMNS})


async def settle(
    conn: psycopg.AsyncConnection[Any],
    hold_id: str,
    status: str,
    now: float,
    captured_units: float | None = None,
    properties: str | None = None,
) -> None:
    params = {
        "status": status,
        "now": now,
        "units": captured_units,
        "props": properties,
        "id": hold_id,
        "held": HELD,
    }
    await conn.execute(SETTLE, params)


async def announce(
    conn: psycopg.AsyncConnection[Any], audit: dict[str, Any], message: NewMessage
) -> psycopg.AsyncCursor[Any]:
    """Queue the audit row and the relay message; ``announced`` reads the relay's row."""
    await conn.execute(*direct_record([audit]))
    return await conn.execute(*direct_enqueue([message]))


async def announced(cursor: psycopg.AsyncCursor[Any], message: NewMessage) -> int:
    """Deliveries the relay message added (after the commit)."""
    row = await cursor.fetchone()
    assert row is not None
    return enqueued([message], row)[1]
