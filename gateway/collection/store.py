"""The repository of collection's tables: attempts and refunds as recorded. Functions here
flush, never commit.

Every update of an attempt's status is conditional on the status read (``WHERE status =
:seen``) and forward only (``states.can_move``), so two processes applying events to one
row cannot interleave, and a late event cannot move it back.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.collection import states
from gateway.collection.models import (
    CANCELED,
    CHECKOUT,
    FAILED,
    OFF_SESSION,
    PENDING,
    PROCESSING,
    REQUIRES_ACTION,
    Collection,
    CollectionRefund,
)

_TABLE = Collection.__table__  # type: ignore[attr-defined]
_REFUNDS = CollectionRefund.__table__  # type: ignore[attr-defined]


async def for_invoice(session: AsyncSession, invoice_id: str) -> list[Collection]:
    """Every attempt on an invoice, first to last."""
    result = await session.exec(
        select(Collection)
        .where(Collection.invoice_id == invoice_id)
        .order_by(col(Collection.attempt))
    )
    return list(result.all())


async def by_id(session: AsyncSession, row_id: int) -> Collection | None:
    return await session.get(Collection, row_id)


async def by_payment_intent(session: AsyncSession, intent_id: str) -> Collection | None:
    result = await session.exec(select(Collection).where(Collection.payment_intent_id == intent_id))
    return result.first()


async def by_checkout_session(session: AsyncSession, session_id: str) -> Collection | None:
    result = await session.exec(
        select(Collection).where(Collection.checkout_session_id == session_id)
    )
    return result.first()


async def next_attempt_number(session: AsyncSession, invoice_id: str) -> int:
    result = await session.exec(
        select(func.max(Collection.attempt)).where(Collection.invoice_id == invoice_id)
    )
    return int(result.one() or 0) + 1


async def claim(session: AsyncSession, row: Collection) -> Collection | None:
    """Insert a new attempt; None when another process claimed this attempt (or one is in
    flight) first. The caller commits before calling Stripe (claim, then call)."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return None
    return row


def new_attempt(
    invoice: dict[str, Any],
    attempt: int,
    *,
    kind: str,
    actor: str,
    lease_seconds: float,
    stripe_customer_id: str | None,
) -> Collection:
    """An attempt row for ``invoice`` (Lago's wire form), claimed for ``lease_seconds``."""
    now = time.time()
    customer = invoice.get("customer") or {}
    return Collection(
        invoice_id=invoice["lago_id"],
        invoice_number=invoice.get("number"),
        invoice_type=invoice.get("invoice_type"),
        attempt=attempt,
        kind=kind,
        external_customer_id=str(customer.get("external_id") or ""),
        stripe_customer_id=stripe_customer_id,
        amount_cents=states.amount_due(invoice),
        currency=str(invoice.get("currency") or "USD").upper(),
        status=PENDING,
        idempotency_key=states.idempotency_key(invoice["lago_id"], attempt),
        claimed_until=now + lease_seconds,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )


async def move(conn: AsyncConnection, row: Collection, new: str, **fields: Any) -> bool:
    """Move ``row`` to ``new`` if that is forward and nobody moved it meanwhile; the
    other ``fields`` are written with it. Returns whether the row changed."""
    if new != row.status and not states.can_move(row.status, new):
        return False
    values = {"status": new, "updated_at": time.time(), **fields}
    statement = (
        update(_TABLE).where(_TABLE.c.id == row.id, _TABLE.c.status == row.status).values(values)
    )
    result = await conn.execute(statement)
    if result.rowcount != 1:
        return False
    for name, value in values.items():
        set_committed_value(row, name, value)  # the row now mirrors the database, not dirty
    return True


async def end_dunning(conn: AsyncConnection, invoice_id: str) -> None:
    """No retry is scheduled for the invoice any more."""
    await conn.execute(
        update(_TABLE).where(_TABLE.c.invoice_id == invoice_id).values(next_retry_at=None)
    )


async def take_retry(conn: AsyncConnection, invoice_id: str, due: Collection) -> bool:
    """End the schedule at the retry ``due`` set, if nobody took that retry meanwhile."""
    statement = update(_TABLE).where(
        _TABLE.c.invoice_id == invoice_id,
        _TABLE.c.id == due.id,
        _TABLE.c.next_retry_at == due.next_retry_at,
    )
    return (await conn.execute(statement.values(next_retry_at=None))).rowcount == 1


async def set_next_retry(conn: AsyncConnection, row_id: int | None, due: float | None) -> None:
    """When the attempt's invoice is retried next (None: not)."""
    await conn.execute(update(_TABLE).where(_TABLE.c.id == row_id).values(next_retry_at=due))


async def bring_retries_forward(
    conn: AsyncConnection, external_customer_id: str, now: float
) -> None:
    """The customer's scheduled retries are due at ``now``."""
    await conn.execute(
        update(_TABLE)
        .where(
            _TABLE.c.external_customer_id == external_customer_id,
            _TABLE.c.next_retry_at.is_not(None),
        )
        .values(next_retry_at=now)
    )


async def set_lago_status(conn: AsyncConnection, row_id: int | None, lago_status: str) -> None:
    """What Lago was told of the attempt."""
    await conn.execute(update(_TABLE).where(_TABLE.c.id == row_id).values(lago_status=lago_status))


async def due_retries(session: AsyncSession, now: float, limit: int) -> list[Collection]:
    """Attempts whose invoice is due for its next dunning attempt."""
    result = await session.exec(
        select(Collection)
        .where(col(Collection.next_retry_at).is_not(None), col(Collection.next_retry_at) <= now)
        .order_by(col(Collection.next_retry_at))
        .limit(limit)
    )
    return list(result.all())


async def stalled(session: AsyncSession, now: float, limit: int) -> list[Collection]:
    """Claimed attempts whose Stripe call never got recorded (a crash, a timeout)."""
    result = await session.exec(
        select(Collection)
        .where(
            Collection.status == PENDING,
            col(Collection.claimed_until).is_not(None),
            col(Collection.claimed_until) <= now,
        )
        .order_by(col(Collection.id))
        .limit(limit)
    )
    return list(result.all())


async def unsynced(session: AsyncSession, limit: int) -> list[Collection]:
    """Attempts whose outcome Lago has not been told yet."""
    result = await session.exec(
        select(Collection)
        .where(
            or_(
                col(Collection.status).in_((*states.PAID, FAILED))
                & col(Collection.lago_status).is_(None),
                col(Collection.status).in_(states.PAID) & (Collection.lago_status == FAILED),
            )
        )
        .order_by(col(Collection.id))
        .limit(limit)
    )
    return list(result.all())


async def open_attempts(session: AsyncSession, since: float, limit: int) -> list[Collection]:
    """Attempts Stripe may still settle (for the reconciler), most recent first."""
    result = await session.exec(
        select(Collection)
        .where(
            col(Collection.status).in_((PENDING, PROCESSING, REQUIRES_ACTION)),
            col(Collection.updated_at) >= since,
            or_(
                col(Collection.payment_intent_id).is_not(None),
                col(Collection.checkout_session_id).is_not(None),
            ),
        )
        .order_by(col(Collection.updated_at).desc())
        .limit(limit)
    )
    return list(result.all())


async def invoices_with_attempts(session: AsyncSession, invoice_ids: list[str]) -> set[str]:
    """Which of these invoices the gateway already collects."""
    if not invoice_ids:
        return set()
    result = await session.exec(
        select(Collection.invoice_id).where(col(Collection.invoice_id).in_(invoice_ids)).distinct()
    )
    return set(result.all())


async def needing_customer(session: AsyncSession, limit: int) -> list[Collection]:
    """Open payment links and attempts waiting for the customer, newest first."""
    result = await session.exec(
        select(Collection)
        .where(
            or_(
                (col(Collection.kind) == CHECKOUT) & (col(Collection.status) == PENDING),
                col(Collection.status) == REQUIRES_ACTION,
            )
        )
        .order_by(col(Collection.updated_at).desc())
        .limit(limit)
    )
    return list(result.all())


async def in_dunning(session: AsyncSession, limit: int) -> list[Collection]:
    """Failed attempts with a retry scheduled, soonest first."""
    result = await session.exec(
        select(Collection)
        .where(col(Collection.next_retry_at).is_not(None))
        .order_by(col(Collection.next_retry_at))
        .limit(limit)
    )
    return list(result.all())


async def for_customer(
    session: AsyncSession, external_customer_id: str, limit: int
) -> list[Collection]:
    """A customer's attempts on any invoice, newest first."""
    result = await session.exec(
        select(Collection)
        .where(Collection.external_customer_id == external_customer_id)
        .order_by(col(Collection.created_at).desc(), col(Collection.id).desc())
        .limit(limit)
    )
    return list(result.all())


async def disputes(session: AsyncSession, limit: int) -> list[Collection]:
    result = await session.exec(
        select(Collection)
        .where(col(Collection.dispute_id).is_not(None))
        .order_by(col(Collection.updated_at).desc())
        .limit(limit)
    )
    return list(result.all())


async def claim_refund(session: AsyncSession, row: CollectionRefund) -> CollectionRefund | None:
    """Insert a new refund; None when its credit note was claimed already (the caller commits
    before calling Stripe)."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return None
    return row


async def move_refund(conn: AsyncConnection, row: CollectionRefund, values: dict[str, Any]) -> bool:
    """Write ``values`` if nobody moved the refund meanwhile; returns whether it changed."""
    statement = update(_REFUNDS).where(_REFUNDS.c.id == row.id, _REFUNDS.c.status == row.status)
    return (await conn.execute(statement.values(values))).rowcount == 1


async def set_refund_lago_status(conn: AsyncConnection, row_id: int | None, value: str) -> None:
    """What Lago's credit note was told of the refund."""
    await conn.execute(update(_REFUNDS).where(_REFUNDS.c.id == row_id).values(lago_status=value))


async def stalled_refunds(session: AsyncSession, now: float, limit: int) -> list[CollectionRefund]:
    """Claimed refunds whose Stripe call never got recorded."""
    result = await session.exec(
        select(CollectionRefund)
        .where(
            CollectionRefund.status == PENDING,
            CollectionRefund.stripe_refund_id == None,  # noqa: E711
            CollectionRefund.claimed_until <= now,  # type: ignore[operator]
        )
        .limit(limit)
    )
    return list(result.all())


async def by_stripe_refund(session: AsyncSession, refund_id: str) -> CollectionRefund | None:
    result = await session.exec(
        select(CollectionRefund).where(CollectionRefund.stripe_refund_id == refund_id)
    )
    return result.first()


async def refunds(
    session: AsyncSession, *, invoice_id: str | None = None, limit: int = 50
) -> list[CollectionRefund]:
    query = select(CollectionRefund).order_by(col(CollectionRefund.created_at).desc())
    if invoice_id is not None:
        query = query.where(CollectionRefund.invoice_id == invoice_id)
    result = await session.exec(query.limit(limit))
    return list(result.all())


async def awaiting_link(session: AsyncSession, since: float, limit: int) -> list[Collection]:
    """Off-session attempts that needed the customer and got no payment link after them
    (a crash or an outage between the two)."""
    later = Collection.__table__.alias("later")  # type: ignore[attr-defined]
    paid_rows = Collection.__table__.alias("paid_rows")  # type: ignore[attr-defined]
    result = await session.exec(
        select(Collection)
        .where(
            Collection.kind == OFF_SESSION,
            col(Collection.status).in_((REQUIRES_ACTION, CANCELED)),
            col(Collection.failure_code).is_not(None),
            col(Collection.updated_at) >= since,
            ~select(later.c.id)
            .where(
                later.c.invoice_id == Collection.invoice_id, later.c.attempt > Collection.attempt
            )
            .exists(),
            ~select(paid_rows.c.id)
            .where(
                paid_rows.c.invoice_id == Collection.invoice_id, paid_rows.c.status.in_(states.PAID)
            )
            .exists(),
        )
        .limit(limit)
    )
    return list(result.all())
