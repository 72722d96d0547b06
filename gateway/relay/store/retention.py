"""Retention's statements: finished messages (see ``relay.retention``), walked by ``seq``
ranges, leave with their deliveries and attempts."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.relay.models import CANCELLED, DELIVERED, FAILED

_FINISHED = (
    "NOT EXISTS (SELECT 1 FROM relay_deliveries d "
    "LEFT JOIN relay_endpoints e ON e.id = d.endpoint_id "
    "WHERE d.message_id = relay_messages.id AND ("
    "NOT (d.status IN (:delivered, :cancelled) "
    "OR (d.status = :failed AND (e.id IS NULL OR e.enabled = :no))) "
    "OR COALESCE(d.last_attempt_at, d.created_at) >= :cutoff))"
)
FIRST_SEQ = text("SELECT min(seq) FROM relay_messages WHERE seq >= :lo")
OLDEST = text("SELECT min(received_at) FROM relay_messages WHERE seq >= :lo AND seq < :hi")
_CANDIDATES = (
    "SELECT seq, id FROM relay_messages WHERE seq >= :lo AND seq < :hi "
    f"AND received_at < :cutoff AND {_FINISHED} ORDER BY seq"
)
_ALL_DELIVERIES = text(
    "SELECT message_id FROM relay_deliveries WHERE message_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_LOCK_DELIVERIES = text(
    "SELECT message_id FROM relay_deliveries WHERE message_id IN :ids "
    "ORDER BY id FOR UPDATE SKIP LOCKED"
).bindparams(bindparam("ids", expanding=True))
_DELETE_MESSAGES = text(
    "DELETE FROM relay_messages WHERE seq IN :seqs AND received_at < :cutoff "
    f"AND {_FINISHED} RETURNING id"
).bindparams(bindparam("seqs", expanding=True))
_DELETE_DELIVERIES = text("DELETE FROM relay_deliveries WHERE message_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_DELETE_ATTEMPTS = text("DELETE FROM relay_attempts WHERE message_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


async def prune_range(conn: AsyncConnection, lo: int, hi: int, cutoff: float) -> Tally[str]:
    """Delete the finished messages of ``seq`` range ``[lo, hi)`` received before ``cutoff``,
    with their deliveries and attempts; how many of each went."""
    params: dict[str, Any] = {"delivered": DELIVERED, "cancelled": CANCELLED, "failed": FAILED}
    params.update(no=False, cutoff=cutoff)
    postgres = conn.dialect.name == "postgresql"
    lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
    range_params = {**params, "lo": lo, "hi": hi}
    found: list[Any] = list((await conn.execute(text(_CANDIDATES + lock), range_params)).all())
    if postgres and found:
        found = await _with_every_delivery_locked(conn, found)
    counts: Tally[str] = Tally()
    if not found:
        return counts
    deleted = (
        await conn.execute(_DELETE_MESSAGES, {**params, "seqs": [row[0] for row in found]})
    ).all()
    ids = [row[0] for row in deleted]
    if ids:
        counts["messages"] = len(ids)
        counts["deliveries"] = (await conn.execute(_DELETE_DELIVERIES, {"ids": ids})).rowcount
        counts["attempts"] = (await conn.execute(_DELETE_ATTEMPTS, {"ids": ids})).rowcount
    return counts


async def _with_every_delivery_locked(conn: AsyncConnection, found: list[Any]) -> list[Any]:
    """The candidates whose deliveries this transaction could lock, all of them; the others
    are being changed (a recovery requeueing one) and wait for the next run."""
    ids = [row[1] for row in found]
    existing = Tally(row[0] for row in await conn.execute(_ALL_DELIVERIES, {"ids": ids}))
    locked = Tally(row[0] for row in await conn.execute(_LOCK_DELIVERIES, {"ids": ids}))
    return [row for row in found if locked[row[1]] == existing[row[1]]]
