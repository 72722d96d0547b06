"""The ``audit_entries`` table: every statement on it, columns and types from ``AuditEntry``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import String, cast, insert, or_
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.audit.models import AuditEntry

TABLE = AuditEntry.__table__  # type: ignore[attr-defined]


def bulk_insert_sql(rows_param: str) -> str:
    """PostgreSQL: one INSERT of every row in the JSON array ``%(<rows_param>)s`` (rows as
    ``service.entry()`` makes them), columns and types taken from the ``AuditEntry`` model, so
    no column can be left out. Usable as a CTE inside a larger statement."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    columns = [column for column in TABLE.columns if column.name != "id"]
    names = ", ".join(column.name for column in columns)
    types = ", ".join(f"{column.name} {column.type.compile(dialect=dialect)}" for column in columns)
    return (
        f"INSERT INTO {TABLE.name} ({names}) "
        f"SELECT {names} FROM json_to_recordset(%({rows_param})s::json) AS r({types})"
    )


BULK_INSERT_PG = bulk_insert_sql("rows")


async def insert_many(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert prepared rows in the caller's transaction: one statement on PostgreSQL (an
    executemany costs more than the rows a hot path stores), an executemany elsewhere."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        await connection.exec_driver_sql(BULK_INSERT_PG, {"rows": orjson.dumps(rows).decode()})
    else:
        await connection.execute(insert(AuditEntry), rows)


async def search(
    session: AsyncSession,
    *,
    action: str | None,
    target: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEntry]:
    """Newest first, keyset-paginated by id; ``%`` and ``_`` in a filter are literal."""
    c = TABLE.c
    query = select(AuditEntry).order_by(c.id.desc())
    if action:
        if action.endswith("*"):
            # autoescape: LIKE's wildcards (and the escape character) match only themselves.
            query = query.where(c.action.startswith(action[:-1], autoescape=True))
        else:
            query = query.where(c.action == action)
    if target:
        # One whole element of the JSON list, encoded as the column stores it (json.dumps).
        element = cast(c.target_ids, String).contains(json.dumps(target), autoescape=True)
        query = query.where(or_(c.target == target, element))
    if since:
        query = query.where(c.at >= since)
    if until:
        query = query.where(c.at < until)
    if before_id is not None:
        query = query.where(c.id < before_id)
    result = await session.exec(query.limit(limit))
    return list(result.all())
