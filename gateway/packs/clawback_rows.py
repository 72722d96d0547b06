"""The ``pack_clawbacks`` table, and the owed bonus a clawback withdraws: every statement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, or_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from gateway.db import Database
from gateway.packs.models import (
    CLAWBACK_CLAIMED,
    CLAWBACK_DONE,
    PackClawback,
)
from gateway.packs.store import OPEN
from gateway.packs.store import TABLE as PURCHASES

TABLE: Table = PackClawback.__table__  # type: ignore[attr-defined]
_c = TABLE.c
_p = PURCHASES.c
WITHDRAWN = "bonus_withdrawn"


async def purchase_for_invoice(database: Database, invoice_id: str) -> RowMapping | None:
    """The pack purchase whose credit invoice is ``invoice_id``, if any."""
    async with database.engine.connect() as conn:
        found = await conn.execute(select(*_p).where(_p.lago_invoice_id == invoice_id))
        return found.mappings().first()


async def claim(database: Database, values: dict[str, Any], now: datetime, until: datetime) -> str:
    """Claim the clawback of ``values["credit_note_id"]``: a new row, or one whose claim
    expired. ``claimed``, or why not: ``done`` or ``held`` (by someone else, for now)."""
    row = {**values, "status": CLAWBACK_CLAIMED, "claimed_until": until}
    try:
        async with database.engine.begin() as conn:
            await conn.execute(insert(TABLE).values(**row, created_at=now, updated_at=now))
        return CLAWBACK_CLAIMED
    except IntegrityError:
        pass
    async with database.engine.begin() as conn:
        taken = await conn.execute(
            update(TABLE)
            .where(
                _c.credit_note_id == values["credit_note_id"],
                _c.status == CLAWBACK_CLAIMED,
                or_(_c.claimed_until.is_(None), _c.claimed_until < now),
            )
            .values(claimed_until=until, updated_at=now)
        )
        if taken.rowcount == 1:
            return CLAWBACK_CLAIMED
        found = await conn.execute(
            select(_c.status).where(_c.credit_note_id == values["credit_note_id"])
        )
        return CLAWBACK_DONE if found.scalar() == CLAWBACK_DONE else "held"


async def release(database: Database, credit_note_id: str, now: datetime) -> None:
    """Give a claim back at once (the clawback failed: the next trigger may take it)."""
    async with database.engine.begin() as conn:
        await conn.execute(
            update(TABLE)
            .where(_c.credit_note_id == credit_note_id, _c.status == CLAWBACK_CLAIMED)
            .values(claimed_until=None, updated_at=now)
        )


async def finish(conn: Any, credit_note_id: str, values: dict[str, Any], now: datetime) -> bool:
    """The clawback is done (what was taken back and not); False if it was already."""
    done = await conn.execute(
        update(TABLE)
        .where(_c.credit_note_id == credit_note_id, _c.status == CLAWBACK_CLAIMED)
        .values(**values, status=CLAWBACK_DONE, claimed_until=None, updated_at=now)
    )
    return bool(done.rowcount == 1)


async def withdraw_owed(conn: Any, row_id: int, remaining: str, now: datetime) -> bool:
    """Lower a bonus not granted yet to ``remaining`` credits (``bonus_withdrawn`` at 0, never
    granted then); only while nobody holds its lease. False otherwise."""
    values: dict[str, Any] = {"bonus_credits": remaining}
    if not any(c not in "0." for c in remaining):
        values.update(bonus_status=WITHDRAWN, bonus_next_check_at=None)
    changed = await conn.execute(
        update(PURCHASES)
        .where(
            _p.id == row_id,
            _p.bonus_status.in_(OPEN),
            or_(_p.bonus_lease_until.is_(None), _p.bonus_lease_until < now),
        )
        .values(**values)
    )
    return bool(changed.rowcount == 1)


async def by_credit_note(database: Database, credit_note_id: str) -> PackClawback | None:
    """The clawback row of a credit note."""
    async with database.session() as session:
        found = await session.exec(
            select(PackClawback).where(PackClawback.credit_note_id == credit_note_id)
        )
        return found.first()
