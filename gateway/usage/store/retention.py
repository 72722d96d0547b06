"""Retention's statements: forwarded rows leave by id range (``usage.retention``)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.usage.models import FORWARDED

FIRST_ID = text("SELECT min(id) FROM usage_events WHERE id >= :lo")
OLDEST_IN_RANGE = text("SELECT min(accepted_at) FROM usage_events WHERE id >= :lo AND id < :hi")
_DELETE_FORWARDED = text(
    "DELETE FROM usage_events WHERE id >= :lo AND id < :hi "
    "AND status = :forwarded AND forwarded_at < :cutoff"
)


async def delete_forwarded(conn: AsyncConnection, lo: int, hi: int, cutoff: float) -> int:
    """Delete the ids in ``[lo, hi)`` forwarded before ``cutoff``; how many went."""
    params = {"lo": lo, "hi": hi, "forwarded": FORWARDED, "cutoff": cutoff}
    return max((await conn.execute(_DELETE_FORWARDED, params)).rowcount or 0, 0)
