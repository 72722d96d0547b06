"""The append-only audit log: written in the same transaction as the change it records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.audit import store
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


def direct_record(rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The statement (and parameters) ``record_many`` runs on PostgreSQL, for a caller on a
    direct psycopg connection, in its transaction."""
    return store.BULK_INSERT_PG, {"rows": orjson.dumps(rows).decode()}


async def record_many(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert prepared audit rows (``entry()``) on a raw connection, in the caller's
    transaction (one statement on PostgreSQL). Every capability writes its audit rows here or
    through ``record``."""
    await store.insert_many(connection, rows)


async def search(
    session: AsyncSession, filters: AuditFilter, *, before_id: int | None, limit: int
) -> list[AuditEntry]:
    """Newest first, keyset-paginated by id; ``%`` and ``_`` in a filter are literal."""
    return await store.search(
        session,
        action=filters.action,
        target=filters.target,
        since=filters.since,
        until=filters.until,
        before_id=before_id,
        limit=limit,
    )
