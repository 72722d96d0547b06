"""What the API and the CLI read and change: endpoints, cancelled deliveries, messages and
their deliveries and attempts, and redelivery (a message again to some endpoints, or an
endpoint's recent failures)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.relay.models import CANCELLED, FAILED, PENDING, RelayEndpoint
from gateway.relay.store.columns import QUEUED

_ENDPOINTS: Table = RelayEndpoint.__table__  # type: ignore[attr-defined]
_REQUEUE = (
    "status = :pending, attempts = 0, next_attempt_at = :now, delivered_at = NULL, "
    "last_status = NULL, last_error = NULL"
)
_UPSERT_DELIVERIES = text(
    f"INSERT INTO relay_deliveries ({QUEUED[0]}) VALUES ({QUEUED[1]}) "
    f"ON CONFLICT (message_id, endpoint_id) DO UPDATE SET {_REQUEUE}"
)


async def endpoints_oldest_first(session: AsyncSession) -> list[RelayEndpoint]:
    result = await session.exec(select(RelayEndpoint).order_by(_ENDPOINTS.c.created_at))
    return list(result.all())


async def cancel_deliveries(conn: AsyncConnection, endpoint_id: str, why: str) -> int:
    """Cancel the endpoint's pending deliveries; how many."""
    result = await conn.execute(
        text(
            "UPDATE relay_deliveries SET status = :cancelled, last_error = :why "
            "WHERE endpoint_id = :id AND status = :pending"
        ),
        {"cancelled": CANCELLED, "why": why, "id": endpoint_id, "pending": PENDING},
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def message_page(
    conn: AsyncConnection,
    *,
    type_: str | None,
    source: str | None,
    endpoint_id: str | None,
    status: str | None,
    before: int | None,
    limit: int,
) -> list[Any]:
    """Messages newest first (``type_`` exact, or a prefix ending in ``*``), without bodies."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if type_:
        if type_.endswith("*"):
            where.append("m.type LIKE :type ESCAPE '\\'")
            params["type"] = type_[:-1].replace("%", r"\%").replace("_", r"\_") + "%"
        else:
            where.append("m.type = :type")
            params["type"] = type_
    if source:
        where.append("m.source = :source")
        params["source"] = source
    if endpoint_id or status:
        sub = ["d.message_id = m.id"]
        if endpoint_id:
            sub.append("d.endpoint_id = :endpoint")
            params["endpoint"] = endpoint_id
        if status:
            sub.append("d.status = :status")
            params["status"] = status
        where.append(f"EXISTS (SELECT 1 FROM relay_deliveries d WHERE {' AND '.join(sub)})")
    if before is not None:
        where.append("m.seq < :before")
        params["before"] = before
    sql = (
        "SELECT m.seq, m.id, m.type, m.source, m.created_at, m.received_at "
        f"FROM relay_messages m WHERE {' AND '.join(where)} ORDER BY m.seq DESC LIMIT :limit"
    )
    return list((await conn.execute(text(sql), params)).all())


async def message_row(conn: AsyncConnection, message_id: str) -> Any | None:
    row = await conn.execute(
        text(
            "SELECT seq, id, type, source, created_at, received_at, body "
            "FROM relay_messages WHERE id = :id"
        ),
        {"id": message_id},
    )
    return row.first()


_DELIVERIES_OF = text(
    "SELECT message_id, endpoint_id, status, attempts, next_attempt_at, "
    "last_attempt_at, delivered_at, last_status, last_error FROM relay_deliveries "
    "WHERE message_id IN :ids ORDER BY id"
).bindparams(bindparam("ids", expanding=True))


async def deliveries_of(conn: AsyncConnection, message_ids: list[str]) -> list[Any]:
    """The deliveries of these messages, oldest first."""
    if not message_ids:
        return []
    return list((await conn.execute(_DELIVERIES_OF, {"ids": message_ids})).all())


async def attempts_of(conn: AsyncConnection, message_id: str) -> list[Any]:
    rows = await conn.execute(
        text(
            "SELECT endpoint_id, attempt, attempted_at, outcome, status, latency_ms, "
            "response_body, error FROM relay_attempts WHERE message_id = :id ORDER BY id"
        ),
        {"id": message_id},
    )
    return list(rows.all())


async def lock_message(conn: AsyncConnection, message_id: str) -> str | None:
    """The message's type, write-locked (both databases) for the rest of the transaction: the
    retention job cannot delete it meanwhile. None if there is no such message."""
    row = await conn.execute(
        text("UPDATE relay_messages SET type = type WHERE id = :id RETURNING type"),
        {"id": message_id},
    )
    found = row.first()
    return None if found is None else str(found[0])


async def endpoint_enabled(conn: AsyncConnection, endpoint_id: str) -> bool | None:
    """Whether the endpoint is enabled; None if there is no such endpoint."""
    enabled = (
        await conn.execute(
            text("SELECT enabled FROM relay_endpoints WHERE id = :id"), {"id": endpoint_id}
        )
    ).scalar()
    return None if enabled is None else bool(enabled)


async def requeue(
    conn: AsyncConnection, message_id: str, endpoint_ids: Iterable[str], now: float
) -> None:
    """Deliver the message again to these endpoints: a fresh pending delivery, or the old one
    reset (attempts from zero, due now)."""
    await conn.execute(
        _UPSERT_DELIVERIES,
        [{"m": message_id, "e": e, "pending": PENDING, "now": now} for e in endpoint_ids],
    )


async def requeue_failed(
    conn: AsyncConnection, endpoint_id: str, since: float, now: float
) -> list[str]:
    """Reset the endpoint's deliveries that failed since ``since``; their message ids."""
    rows = await conn.execute(
        text(
            f"UPDATE relay_deliveries SET {_REQUEUE} WHERE endpoint_id = :e AND status = :failed "
            "AND COALESCE(last_attempt_at, created_at) >= :since RETURNING message_id"
        ),
        {"e": endpoint_id, "failed": FAILED, "since": since, "pending": PENDING, "now": now},
    )
    return [row[0] for row in rows]
