"""Relay messages collection raises for internal services, in the transaction of the change.

    collection.action_required   the customer must act: a hosted payment link to send them
    collection.failed            dunning ran out: the invoice stays failed in Lago

Message ids are stable (one ``failed`` per invoice, one ``action_required`` per link), so a
change applied twice raises its message once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.audit.service import record as audit
from gateway.collection import metrics
from gateway.collection.models import Collection
from gateway.relay.service import enqueue_message, iso

ACTION_REQUIRED = "collection.action_required"
FAILED = "collection.failed"


def invoice_summary(row: Collection) -> dict[str, Any]:
    return {
        "lago_id": row.invoice_id,
        "number": row.invoice_number,
        "invoice_type": row.invoice_type,
        "external_customer_id": row.external_customer_id,
        "amount_cents": row.amount_cents,
        "currency": row.currency,
    }


async def raise_failed(
    conn: AsyncConnection, session: AsyncSession, row: Collection, attempts: list[Collection]
) -> None:
    """Dunning is over for this invoice: tell subscribers (once) and audit it."""
    data = {
        "invoice": invoice_summary(row),
        "attempts": len(attempts),
        "last_attempt": {
            "attempt": row.attempt,
            "status": row.status,
            "failure_code": row.failure_code,
            "payment_intent_id": row.payment_intent_id,
        },
    }
    new = await enqueue_message(
        conn, message_id=f"{FAILED}.{row.invoice_id}", type=FAILED, source="gateway", data=data
    )
    if new:
        metrics.DUNNING_EXHAUSTED.inc()
        audit(
            session,
            actor="collector",
            action=FAILED,
            outcome="failed",
            target=row.invoice_id,
            detail={"attempts": len(attempts), "failure_code": row.failure_code},
        )


async def raise_action_required(
    conn: AsyncConnection, session: AsyncSession, link: Collection, reason: str | None
) -> None:
    """The customer must pay on a hosted page: tell subscribers where (once per link)."""
    data = {
        "invoice": invoice_summary(link),
        "reason": reason,
        "payment_url": link.payment_link,
        "expires_at": iso(link.link_expires_at) if link.link_expires_at else None,
        "attempt": link.attempt,
    }
    new = await enqueue_message(
        conn,
        message_id=f"{ACTION_REQUIRED}.{link.invoice_id}.{link.attempt}",
        type=ACTION_REQUIRED,
        source="gateway",
        data=data,
    )
    if new:
        audit(
            session,
            actor="collector",
            action=ACTION_REQUIRED,
            outcome="requires_action",
            target=link.invoice_id,
            detail={"attempt": link.attempt, "reason": reason},
        )
