"""Endpoint health, as the sender settles outcomes: the failure clock, and disabling an
endpoint that has failed for too long (its pending deliveries fail with it)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.relay.models import FAILED, PENDING


async def mark_healthy(conn: AsyncConnection, endpoint_ids: list[str]) -> None:
    if endpoint_ids:
        await conn.execute(
            text("UPDATE relay_endpoints SET failing_since = NULL WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": endpoint_ids},
        )


async def mark_failing(conn: AsyncConnection, since: dict[str, float]) -> None:
    """Start the failure clock of endpoints that were healthy."""
    for endpoint_id, at in sorted(since.items()):
        await conn.execute(
            text(
                "UPDATE relay_endpoints SET failing_since = :at "
                "WHERE id = :id AND failing_since IS NULL"
            ),
            {"at": at, "id": endpoint_id},
        )


async def failing_longer_than(
    conn: AsyncConnection, endpoint_ids: list[str], cutoff: float
) -> list[str]:
    if not endpoint_ids:
        return []
    rows = await conn.execute(
        text(
            "SELECT id FROM relay_endpoints WHERE id IN :ids AND enabled = :yes "
            "AND failing_since IS NOT NULL AND failing_since <= :cutoff ORDER BY id"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": endpoint_ids, "yes": True, "cutoff": cutoff},
    )
    return [row[0] for row in rows]


async def disable_endpoint(
    conn: AsyncConnection, endpoint_id: str, reason: str
) -> dict[str, Any] | None:
    """Disable an enabled endpoint and fail its pending deliveries; None if it was not enabled."""
    now = time.time()
    row = (
        await conn.execute(
            text(
                "UPDATE relay_endpoints SET enabled = :no, disabled_reason = :reason, "
                "updated_at = :now WHERE id = :id AND enabled = :yes "
                "RETURNING id, url, description, filter_types, failing_since"
            ),
            {"no": False, "yes": True, "reason": reason[:255], "now": now, "id": endpoint_id},
        )
    ).first()
    if row is None:
        return None
    await conn.execute(
        text(
            "UPDATE relay_deliveries SET status = :failed, last_error = :error "
            "WHERE endpoint_id = :id AND status = :pending"
        ),
        {"failed": FAILED, "error": "endpoint disabled", "id": endpoint_id, "pending": PENDING},
    )
    return {
        "id": row[0],
        "url": row[1],
        "description": row[2],
        "filter_types": orjson.loads(row[3]),
        "failing_since": row[4],
        "reason": reason,
    }
