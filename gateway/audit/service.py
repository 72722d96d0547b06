"""The append-only audit log: written in the same transaction as the change it records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import String, cast, insert, or_
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.audit.models import AuditEntry
from gateway.db import utcnow
from gateway.logging import request_id_var

MAX_TARGET_IDS = 100


@dataclass
class AuditFilter:
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def entry(
    *,
    actor: str,
    action: str,
    outcome: str,
    target: str | None = None,
    target_ids: list[str] | None = None,
    upstream: str | None = None,
    status: int | None = None,
    latency_ms: float | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One audit row as a plain dict (target ids capped; the count goes in ``detail``)."""
    if target_ids is not None and len(target_ids) > MAX_TARGET_IDS:
        detail = {**(detail or {}), "target_count": len(target_ids)}
        target_ids = target_ids[:MAX_TARGET_IDS]
    return {
        "at": at or utcnow(),
        "actor": actor,
        "action": action,
        "target": target,
        "target_ids": target_ids,
        "upstream": upstream,
        "outcome": outcome,
        "status": status,
        "latency_ms": None if latency_ms is None else round(latency_ms, 3),
        "request_id": request_id_var.get(),
        "detail": detail,
    }


def record(session: AsyncSession, **fields: Any) -> None:
    """Add an audit row to the session's transaction (committed with the change)."""
    session.add(AuditEntry(**entry(**fields)))


def bulk_insert_sql(rows_param: str) -> str:
    """PostgreSQL: one INSERT of every row in the JSON array ``%(<rows_param>)s`` (rows as
    ``entry()`` makes them), columns and types taken from the ``AuditEntry`` model, so no
    column can be left out. Usable as a CTE inside a larger statement."""
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    columns = [column for column in table.columns if column.name != "id"]
    names = ", ".join(column.name for column in columns)
    types = ", ".join(f"{column.name} {column.type.compile(dialect=dialect)}" for column in columns)
    return (
        f"INSERT INTO {table.name} ({names}) "
        f"SELECT {names} FROM json_to_recordset(%({rows_param})s::json) AS r({types})"
    )


_BULK_INSERT_PG = bulk_insert_sql("rows")


async def record_many(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert prepared audit rows (``entry()``) on a raw connection, in the caller's
    transaction: one statement on PostgreSQL (an executemany costs more than the rows a hot
    path stores), an executemany elsewhere. Every capability writes its audit rows here or
    through ``record``."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        await connection.exec_driver_sql(_BULK_INSERT_PG, {"rows": orjson.dumps(rows).decode()})
    else:
        await connection.execute(insert(AuditEntry), rows)


async def search(
    session: AsyncSession, filters: AuditFilter, *, before_id: int | None, limit: int
) -> list[AuditEntry]:
    """Newest first, keyset-paginated by id; ``%`` and ``_`` in a filter are literal."""
    table = AuditEntry.__table__.c  # type: ignore[attr-defined]
    query = select(AuditEntry).order_by(table.id.desc())
    if filters.action:
        if filters.action.endswith("*"):
            # autoescape: LIKE's wildcards (and the escape character) match only themselves.
            query = query.where(table.action.startswith(filters.action[:-1], autoescape=True))
        else:
            query = query.where(table.action == filters.action)
    if filters.target:
        # One whole element of the JSON list, encoded as the column stores it (json.dumps).
        element = cast(table.target_ids, String).contains(
            json.dumps(filters.target), autoescape=True
        )
        query = query.where(or_(table.target == filters.target, element))
    if filters.since:
        query = query.where(table.at >= filters.since)
    if filters.until:
        query = query.where(table.at < filters.until)
    if before_id is not None:
        query = query.where(table.id < before_id)
    result = await session.exec(query.limit(limit))
    return list(result.all())
