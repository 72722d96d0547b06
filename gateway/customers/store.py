"""The ``customer_links`` table: one row per external id, written by upsert (race-safe)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.customers.models import CustomerLink
from gateway.db import Database, utcnow

TABLE = CustomerLink.__table__  # type: ignore[attr-defined]


async def find(database: Database, external_id: str) -> CustomerLink | None:
    """The link of ``external_id``, read in its own short transaction."""
    async with database.session() as session:
        return await find_in(session, external_id)


async def find_in(session: AsyncSession, external_id: str) -> CustomerLink | None:
    conn = await session.connection()
    row = (await conn.execute(select(TABLE).where(TABLE.c.external_id == external_id))).first()
    return None if row is None else CustomerLink(**row._asdict())


async def find_by_stripe(database: Database, stripe_customer_id: str) -> CustomerLink | None:
    """The link holding this Stripe customer (for Stripe webhooks), if any."""
    async with database.session() as session:
        conn = await session.connection()
        query = select(TABLE).where(TABLE.c.stripe_customer_id == stripe_customer_id)
        row = (await conn.execute(query.limit(1))).first()
    return None if row is None else CustomerLink(**row._asdict())


async def save(
    session: AsyncSession,
    external_id: str,
    *,
    lago_customer_id: str | None = None,
    stripe_customer_id: str | None = None,
    keep_stripe: bool = False,
) -> str | None:
    """Insert or update the link; returns the Stripe id it now holds.

    ``keep_stripe``: a Stripe id already stored wins (two racing creates under one
    idempotency key agree anyway; this keeps the first should they not).
    """
    conn = await session.connection()
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    now = utcnow()
    row = CustomerLink(
        external_id=external_id,
        lago_customer_id=lago_customer_id,
        stripe_customer_id=stripe_customer_id,
        created_at=now,
        updated_at=now,
    )
    # Every column but the key, from the model: one it gains is written with its default.
    insert = dialect.insert(TABLE).values(row.model_dump(exclude={"id"}))
    changes: dict[str, Any] = {"updated_at": insert.excluded.updated_at}
    if lago_customer_id is not None:
        changes["lago_customer_id"] = insert.excluded.lago_customer_id
    if stripe_customer_id is not None:
        changes["stripe_customer_id"] = (
            func.coalesce(TABLE.c.stripe_customer_id, insert.excluded.stripe_customer_id)
            if keep_stripe
            else insert.excluded.stripe_customer_id
        )
    await conn.execute(insert.on_conflict_do_update(index_elements=["external_id"], set_=changes))
    stored = await find_in(session, external_id)
    return None if stored is None else stored.stripe_customer_id
