"""The holds' statements, run in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.holds.models import HELD, Hold

COLUMNS = tuple(column.name for column in Hold.__table__.columns)  # type: ignore[attr-defined]
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM holds"
SELECT_BY_ID = f"{_SELECT} WHERE id = :id"
INSERT = f"INSERT INTO holds ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
# End a held hold (``:status``, ``:now``, ``:units``, ``:props``, ``:id``, ``:held``).
SETTLE = (
    "UPDATE holds SET status = :status, settled_at = :now, "
    "captured_units = :units, properties = COALESCE(:props, properties) "
    "WHERE id = :id AND status = :held"
)


async def insert(conn: AsyncConnection, row: dict[str, Any]) -> None:
    await conn.execute(text(INSERT), {name: row.get(name) for name in COLUMNS})


async def by_id(conn: AsyncConnection, hold_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(text(SELECT_BY_ID), {"id": hold_id})).first()
    return None if row is None else dict(row._mapping)


async def by_key(
    conn: AsyncConnection, external_subscription_id: str, transaction_id: str
) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            text(f"{_SELECT} WHERE external_subscription_id = :s AND transaction_id = :t"),
            {"s": external_subscription_id, "t": transaction_id},
        )
    ).first()
    return None if row is None else dict(row._mapping)


async def settle(
    conn: AsyncConnection,
    hold_id: str,
    status: str,
    now: float,
    *,
    captured_units: float | None = None,
    properties: str | None = None,
) -> None:
    """End a held hold: captured, released or expired."""
    await conn.execute(
        text(SETTLE),
        {
            "status": status,
            "now": now,
            "units": captured_units,
            "props": properties,
            "id": hold_id,
            "held": HELD,
        },
    )


async def expired(conn: AsyncConnection, now: float, limit: int) -> list[dict[str, Any]]:
    """Held holds past their ``expires_at``, oldest first."""
    result = await conn.execute(
        text(
            f"{_SELECT} WHERE status = :held AND expires_at <= :now "
            "ORDER BY expires_at LIMIT :limit"
        ),
        {"held": HELD, "now": now, "limit": limit},
    )
    return [dict(row._mapping) for row in result]


async def next_expiry(conn: AsyncConnection) -> float | None:
    """When the next held hold expires (None: none is held)."""
    result = await conn.execute(
        text("SELECT min(expires_at) FROM holds WHERE status = :held"), {"held": HELD}
    )
    value = result.scalar()
    return None if value is None else float(value)
