"""The holds' PostgreSQL statements for ``pipelined``, and ``send``: several statements in
one round trip.

``send`` binds parameters on the client (psycopg's ``ClientCursor``) and sends the
statements as one simple query: PostgreSQL runs them in order, each with its own snapshot
under READ COMMITTED, and answers every result at once. Two such round trips make a hold,
a capture or a release: ``BEGIN``, the account lock and the reads; then every write and
``COMMIT``. psycopg's pipeline mode does the same in two round trips, at about a third more
of the gateway's CPU (its result loop polls the socket per result).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import pq

from gateway.audit.service import direct_record
from gateway.holds.models import HELD
from gateway.holds.store import COLUMNS
from gateway.meters.account_store import ACCOUNT_COLUMNS
from gateway.meters.store import HOLD_SHARD, combine
from gateway.relay.service import NewMessage, direct_enqueue

_LOCK_SET = (
    "ON CONFLICT (external_customer_id) DO UPDATE SET touched_at = excluded.touched_at "
    f"RETURNING {ACCOUNT_COLUMNS}"
)
LOCK = (
    "INSERT INTO meter_accounts (external_customer_id, credits, held_tokens, touched_at) "
    f"VALUES (%(c)s, '0', '0', %(now)s) {_LOCK_SET}"
)
# The account of a hold's customer (none: no such hold).
LOCK_OF_HOLD = (
    "INSERT INTO meter_accounts (external_customer_id, credits, held_tokens, touched_at) "
    f"SELECT external_customer_id, '0', '0', %(now)s FROM holds WHERE id = %(id)s {_LOCK_SET}"
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM holds"
HOLD_BY_ID = f"{_SELECT} WHERE id = %(id)s"
# What a new hold decides on: the hold already made for this key, the period's meters (rows
# of every shard), whether a unique-count value was counted already.
HOLD_READ = (
    "SELECT (SELECT row_to_json(h) FROM ("
    f"{_SELECT} WHERE external_subscription_id = %(s)s AND transaction_id = %(t)s) h), "
    "(SELECT coalesce(json_agg(m), '[]') FROM (SELECT metric, group_key, aggregation, units, "
    "events, latest_at, held, updated_at FROM usage_meters "
    "WHERE external_subscription_id = %(s)s AND period_start = %(p)s) m), "
    "EXISTS (SELECT 1 FROM usage_meter_values WHERE external_subscription_id = %(s)s "
    "AND metric = %(m)s AND period_start = %(p)s AND group_key = '' AND value = %(v)s)"
)
INSERT = (
    f"INSERT INTO holds ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'%({name})s' for name in COLUMNS)})"
)
ADD_HELD = (
    "INSERT INTO usage_meters (external_subscription_id, metric, period_start, group_key, "
    "shard, aggregation, units, events, latest_at, held, updated_at) "
    "VALUES (%(s)s, %(m)s, %(p)s, '', %(sh)s, %(a)s, 0, 0, NULL, %(h)s, %(now)s) "
    "ON CONFLICT (external_subscription_id, metric, period_start, group_key, shard) "
    "DO UPDATE SET held = usage_meters.held + excluded.held, updated_at = excluded.updated_at"
)
SET_HELD_TOKENS = "UPDATE meter_accounts SET held_tokens = %(h)s WHERE external_customer_id = %(c)s"
SETTLE = (
    "UPDATE holds SET status = %(status)s, settled_at = %(now)s, captured_units = %(units)s, "
    "properties = COALESCE(%(props)s, properties) WHERE id = %(id)s AND status = %(held)s"
)


Statement = tuple[str, Mapping[str, Any] | None]
Rows = list[dict[str, Any]] | None  # a statement's rows (None: it returns none)


async def send(conn: psycopg.AsyncConnection[Any], statements: Sequence[Statement]) -> list[Rows]:
    """Run ``statements`` in one round trip; each one's rows, as dicts. On an error the
    connection is left as PostgreSQL left it (``rollback`` it)."""
    cursor = psycopg.AsyncClientCursor(conn)
    query = ";\n".join(cursor.mogrify(sql, params) for sql, params in statements)
    await cursor.execute(query)
    found: list[Rows] = []
    while True:
        if cursor.description is None:
            found.append(None)
        else:
            names = [column.name for column in cursor.description]
            found.append([dict(zip(names, row, strict=True)) for row in await cursor.fetchall()])
        if not cursor.nextset():
            return found


async def rollback(conn: psycopg.AsyncConnection[Any]) -> None:
    """End the transaction ``send`` began, when a decision refused or a statement failed."""
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        await conn.execute("ROLLBACK")


BEGIN: Statement = ("BEGIN", None)
COMMIT: Statement = ("COMMIT", None)


def lock(customer: str, now: float) -> Statement:
    """Lock the customer's account (created if new); its one row: the account."""
    return LOCK, {"c": customer, "now": now}


def lock_of_hold(hold_id: str, now: float) -> Statement:
    """Lock the account of the hold's customer; no row: no such hold."""
    return LOCK_OF_HOLD, {"id": hold_id, "now": now}


def read_for_hold(
    subscription: str, transaction_id: str, code: str, period_start: float, distinct: str | None
) -> Statement:
    """``HOLD_READ``; its row goes to ``hold_facts``."""
    return HOLD_READ, {
        "s": subscription, "t": transaction_id, "m": code, "p": period_start, "v": distinct
    }  # fmt: skip


def hold_facts(
    rows: Rows,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """The existing hold (or None), the period's meters (shards combined), value seen."""
    assert rows
    found, meters, seen = rows[0].values()
    return _json(found), combine(_json(meters)), bool(seen)


def _json(value: Any) -> Any:
    """A ``json`` value as the client cursor hands it (text)."""
    return orjson.loads(value) if isinstance(value, str) else value


def read_hold(hold_id: str) -> Statement:
    return HOLD_BY_ID, {"id": hold_id}


def add_held(row: Mapping[str, Any], aggregation: str, held: float, now: float) -> Statement:
    """Reserve (negative: return) ``held`` units on the hold's meter (the holds' shard)."""
    return ADD_HELD, {
        "s": row["external_subscription_id"], "m": row["code"], "p": row["period_start"],
        "sh": HOLD_SHARD, "a": aggregation, "h": held, "now": now,
    }  # fmt: skip


def set_held_tokens(customer: str, held: str) -> Statement:
    return SET_HELD_TOKENS, {"h": held, "c": customer}


def insert(row: Mapping[str, Any]) -> Statement:
    return INSERT, {name: row.get(name) for name in COLUMNS}


def settle(
    hold_id: str,
    status: str,
    now: float,
    captured_units: float | None = None,
    properties: str | None = None,
) -> Statement:
    return SETTLE, {
        "status": status, "now": now, "units": captured_units, "props": properties,
        "id": hold_id, "held": HELD,
    }  # fmt: skip


def announce(audit: dict[str, Any], message: NewMessage) -> list[Statement]:
    """The audit row and the relay message (its row goes to ``relay.service.enqueued``)."""
    return [direct_record([audit]), direct_enqueue([message])]
