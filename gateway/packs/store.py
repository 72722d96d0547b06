"""The ``pack_purchases`` table, every statement on it: the Idempotency-Key records of pack
purchases, and the leases and outcomes of the bonuses they owe."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, or_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db import Database
from gateway.packs.models import (
    AWAITING_PAYMENT,
    BONUS_GRANTED,
    IN_PROGRESS,
    PAYMENT_FAILED,
    PackPurchase,
)

TABLE: Table = PackPurchase.__table__  # type: ignore[attr-defined]
_c = TABLE.c
OPEN = (AWAITING_PAYMENT, PAYMENT_FAILED)


# The request: its Idempotency-Key record.


async def insert(database: Database, row: PackPurchase) -> int:
    """Commit a new purchase row on its own; its id. IntegrityError: the key is taken."""
    async with database.session() as session:
        session.add(row)
        await session.commit()
    assert row.id is not None
    return row.id


async def by_key(session: AsyncSession, actor: str, key: str) -> PackPurchase:
    """The purchase of this caller's Idempotency-Key (it exists)."""
    found = await session.exec(
        select(PackPurchase).where(_c.actor == actor, _c.idempotency_key == key)
    )
    return found.one()


async def reclaim(session: AsyncSession, row: PackPurchase, now: datetime) -> bool:
    """Claim ``row`` again (``in_progress`` from ``now``) if nobody changed it since it was
    read; whether this transaction took it."""
    taken = await session.exec(
        update(TABLE)
        .where(_c.id == row.id, _c.status == row.status, _c.claimed_at == row.claimed_at)
        .values(status=IN_PROGRESS, claimed_at=now, attempts=row.attempts + 1)
    )
    return bool(taken.rowcount == 1)


async def finish(session: AsyncSession, row_id: int, values: dict[str, Any]) -> None:
    """Write the request's outcome columns (and the bonus it owes)."""
    await session.exec(update(TABLE).where(_c.id == row_id).values(**values))


async def remove(session: AsyncSession, row_id: int) -> None:
    await session.exec(delete(TABLE).where(_c.id == row_id))


async def owed_bonus_credits(database: Database, customer_id: str) -> list[str]:
    """The bonus credits (decimal text) of the customer's packs whose payment is awaited."""
    async with database.engine.connect() as conn:
        return await owed_bonus_credits_on(conn, customer_id)


async def owed_bonus_credits_on(conn: AsyncConnection, customer_id: str) -> list[str]:
    """``owed_bonus_credits`` on the caller's connection."""
    found = await conn.execute(
        select(_c.bonus_credits).where(
            _c.external_customer_id == customer_id, _c.bonus_status == AWAITING_PAYMENT
        )
    )
    return [str(credits) for credits in found.scalars() if credits]


# The bonus: leased while someone checks or grants it.


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(_c.bonus_lease_until.is_(None), _c.bonus_lease_until < now)


async def lease_open(
    database: Database, match: tuple[str, str], until: datetime, now: datetime
) -> tuple[RowMapping | None, list[str]]:
    """Lease the open, free bonus of the purchase whose ``match[0]`` column (the paid
    transaction or credit invoice id) is ``match[1]``: the row, or none and the purchase ids
    whose bonus is open but leased by someone else."""
    where = _c[match[0]] == match[1]
    async with database.engine.begin() as conn:
        taken = await conn.execute(
            update(TABLE)
            .where(where, _c.bonus_status.in_(OPEN), _free(now))
            .values(bonus_lease_until=until)
            .returning(*_c)
        )
        row = taken.mappings().first()
        if row is not None:
            return row, []
        found = await conn.execute(select(_c.purchase_id, _c.bonus_status).where(where))
        return None, [r.purchase_id for r in found if r.bonus_status in OPEN]


async def lease_due(
    database: Database, *, limit: int, until: datetime, now: datetime
) -> list[RowMapping]:
    """Lease up to ``limit`` open bonuses due for a check (others skip them: SKIP LOCKED)."""
    due = (
        select(_c.id)
        .where(_c.bonus_status.in_(OPEN), _c.bonus_next_check_at <= now, _free(now))
        .order_by(_c.bonus_next_check_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with database.engine.begin() as conn:
        taken = await conn.execute(
            update(TABLE)
            .where(_c.id.in_(due.scalar_subquery()), _free(now))
            .values(bonus_lease_until=until)
            .returning(*_c)
        )
        return list(taken.mappings())


async def release(
    conn: AsyncConnection, row_id: int, lease_until: datetime, next_check_at: datetime | None
) -> None:
    """Give the lease back (only if still ours) and schedule the next check."""
    await conn.execute(
        update(TABLE)
        .where(_c.id == row_id, _c.bonus_status.in_(OPEN), _c.bonus_lease_until == lease_until)
        .values(
            bonus_lease_until=None,
            bonus_checks=_c.bonus_checks + 1,
            bonus_next_check_at=next_check_at,
        )
    )


async def mark_granted(conn: AsyncConnection, row_id: int, grant_id: str, now: datetime) -> bool:
    """The bonus was granted (Lago transaction ``grant_id``); False if it was not open."""
    done = await conn.execute(
        update(TABLE)
        .where(_c.id == row_id, _c.bonus_status.in_(OPEN))
        .values(
            bonus_status=BONUS_GRANTED,
            bonus_transaction_id=grant_id,
            bonus_settled_at=now,
            bonus_lease_until=None,
            bonus_next_check_at=None,
        )
    )
    return bool(done.rowcount == 1)


async def mark_payment_failed(conn: AsyncConnection, row_id: int) -> bool:
    """The paid credits failed: the bonus is withheld; False if it was not awaiting payment."""
    failed = await conn.execute(
        update(TABLE)
        .where(_c.id == row_id, _c.bonus_status == AWAITING_PAYMENT)
        .values(bonus_status=PAYMENT_FAILED)
    )
    return bool(failed.rowcount == 1)
