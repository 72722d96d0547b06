"""Enqueueing: new messages, and a delivery of each to every enabled endpoint whose type
patterns match.

``messages``: objects with an attribute per column of ``MESSAGE_COLUMNS`` but
``received_at`` (``service.NewMessage``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.relay.models import PENDING
from gateway.relay.store.columns import MESSAGE_COLUMNS, MESSAGES, QUEUED, pg_type, queued


def _message_row(message: Any, now: float) -> tuple[Any, ...]:
    return tuple(
        now if name == "received_at" else getattr(message, name) for name in MESSAGE_COLUMNS
    )


# One statement for all the messages, then a delivery per enabled endpoint whose patterns
# match (``*`` becomes LIKE's ``%``, ``_`` is escaped; the same rule as
# ``service.type_matches``). The rows travel as one JSON array of arrays.
_FANNED_OUT = queued(
    {
        "message_id": "m.id",
        "endpoint_id": "e.id",
        "status": "%(pending)s",
        "attempts": "0",
        "next_attempt_at": "%(now)s",
        "created_at": "%(now)s",
    }
)
_ENQUEUE_PG = (
    "WITH r AS (SELECT "
    + ", ".join(
        f"(r->>{i})::{pg_type(MESSAGES, name)} AS {name}" for i, name in enumerate(MESSAGE_COLUMNS)
    )
    + " FROM json_array_elements(%(rows)s::json) AS r), "
    f"m AS (INSERT INTO relay_messages ({', '.join(MESSAGE_COLUMNS)}) "
    f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM r "
    "ON CONFLICT (id) DO NOTHING RETURNING id, type), "
    f"d AS (INSERT INTO relay_deliveries ({_FANNED_OUT[0]}) SELECT {_FANNED_OUT[1]} "
    "FROM m CROSS JOIN relay_endpoints e "
    "WHERE e.enabled AND EXISTS (SELECT 1 FROM json_array_elements_text(e.filter_types::json) "
    "AS f(p) WHERE m.type LIKE replace(replace(f.p, '_', '\\_'), '*', '%%')) RETURNING 1) "
    "SELECT ids, n, CASE WHEN n > 0 THEN pg_notify(%(channel)s, n::text) END "
    "FROM (SELECT (SELECT array_agg(id) FROM m) AS ids, (SELECT count(*) FROM d) AS n) AS t"
)


ENQUEUE_PG = _ENQUEUE_PG


def enqueue_params(messages: Sequence[Any], now: float, channel: str) -> dict[str, Any]:
    """The parameters of ``ENQUEUE_PG`` (psycopg's ``%(name)s`` style)."""
    rows = orjson.dumps([_message_row(m, now) for m in messages]).decode()
    return {"rows": rows, "now": now, "pending": PENDING, "channel": channel}


async def insert_messages_pg(
    conn: AsyncConnection, messages: Sequence[Any], now: float, channel: str
) -> tuple[set[str], int]:
    """PostgreSQL: store the new messages and their deliveries in one statement, which also
    notifies ``channel`` (on commit) of how many deliveries it added, if any; the ids stored
    now (the others existed) and the deliveries added."""
    params = enqueue_params(messages, now, channel)
    found: Any = (await conn.exec_driver_sql(_ENQUEUE_PG, params)).one()
    return set(found[0] or ()), int(found[1])


_INSERT_MESSAGE = text(
    f"INSERT INTO relay_messages ({', '.join(MESSAGE_COLUMNS)}) "
    f"VALUES ({', '.join(':' + name for name in MESSAGE_COLUMNS)}) "
    "ON CONFLICT (id) DO NOTHING RETURNING seq"
)


async def insert_message(conn: AsyncConnection, message: Any, now: float) -> bool:
    """Store one message; False, writing nothing, when its id exists."""
    row = dict(zip(MESSAGE_COLUMNS, _message_row(message, now), strict=True))
    return (await conn.execute(_INSERT_MESSAGE, row)).first() is not None


async def enabled_filters(conn: AsyncConnection) -> list[tuple[str, list[str]]]:
    """Every enabled endpoint's id and type patterns, by id."""
    rows = await conn.execute(
        text("SELECT id, filter_types FROM relay_endpoints WHERE enabled = :yes ORDER BY id"),
        {"yes": True},
    )
    return [(row[0], orjson.loads(row[1])) for row in rows]


_INSERT_DELIVERIES = text(f"INSERT INTO relay_deliveries ({QUEUED[0]}) VALUES ({QUEUED[1]})")


async def insert_deliveries(
    conn: AsyncConnection, message_id: str, endpoint_ids: list[str], now: float
) -> None:
    """A pending delivery of the message to each endpoint, due now."""
    if endpoint_ids:
        await conn.execute(
            _INSERT_DELIVERIES,
            [{"m": message_id, "e": e, "pending": PENDING, "now": now} for e in endpoint_ids],
        )
