from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from gateway.db import BIG_ID, UTCDateTime

# The request (idempotency record).
IN_PROGRESS = "in_progress"
DONE = "done"
FAILED = "failed"

# The bonus (granted credits) a purchase owes once its paid credits settle.
AWAITING_PAYMENT = "awaiting_payment"
BONUS_GRANTED = "bonus_granted"
PAYMENT_FAILED = "payment_failed"


class PackPurchase(SQLModel, table=True):
    """One token pack purchase, the idempotency record of its request, and its owed bonus.

    The row is committed ``in_progress`` before Lago is called, so a concurrent duplicate
    (same caller, same ``Idempotency-Key``) finds it and waits instead of buying twice.
    ``done`` rows keep the answer that repeats replay; ``failed`` rows (Lago unreachable,
    outcome unknown) may be claimed again, and the retry first looks for the purchase in
    Lago by ``purchase_id``. Purchases without a key have a NULL key (never unique-clash).

    Only the paid credits are topped up at purchase. The bonus is owed (``bonus_status``
    ``awaiting_payment``) until the paid wallet transaction (``lago_transaction_id``)
    settles, then granted once (``bonus_granted``, ``bonus_transaction_id``); a failed
    payment withholds it (``payment_failed``, still watched: a later payment grants it).
    ``bonus_lease_until`` is the claim of whoever is checking or granting it;
    ``bonus_next_check_at`` when the reconciler looks at it next.
    """

    __tablename__ = "pack_purchases"
    __table_args__ = (
        UniqueConstraint("actor", "idempotency_key", name="uq_pack_purchases_actor_key"),
        Index("ix_pack_purchases_bonus_due", "bonus_status", "bonus_next_check_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True))
    purchase_id: str = Field(sa_column=Column(String(40), nullable=False, unique=True))
    actor: str = Field(sa_column=Column(String(100), nullable=False))
    idempotency_key: str | None = Field(default=None, sa_column=Column(String(255)))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    external_customer_id: str = Field(sa_column=Column(String(255), nullable=False, index=True))
    pack_code: str = Field(sa_column=Column(String(255), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    response_status: int | None = Field(default=None, sa_column=Column(Integer))
    response_body: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    claimed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    lago_wallet_id: str | None = Field(default=None, sa_column=Column(String(255)))
    lago_transaction_id: str | None = Field(default=None, sa_column=Column(String(255), index=True))
    lago_invoice_id: str | None = Field(default=None, sa_column=Column(String(255), index=True))
    bonus_status: str | None = Field(default=None, sa_column=Column(String(24)))
    # Credits as exact decimal text ("1000.2"): no float, no SQLite Decimal warnings.
    bonus_credits: str | None = Field(default=None, sa_column=Column(String(40)))
    bonus_transaction_id: str | None = Field(default=None, sa_column=Column(String(255)))
    bonus_checks: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    bonus_next_check_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    bonus_lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    bonus_settled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


# A token pack clawback (a credit note on a pack's invoice).
CLAWBACK_CLAIMED = "claimed"
CLAWBACK_DONE = "done"


class PackClawback(SQLModel, table=True):
    """What a credit note on a pack's credit invoice took back from the token wallet.

    One row per credit note (unique), committed ``claimed`` before Lago is called, so the
    create call and the ``credit_note.created`` webhook take back once between them; a claim
    whose ``claimed_until`` passed (crashed process) may be taken over. ``done`` rows say
    what was taken back: the paid credits Lago voided itself, the bonus share voided by the
    gateway (``lago_transaction_id``) and what could not be taken back (already spent).
    Credits are exact decimal text.
    """

    __tablename__ = "pack_clawbacks"

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True))
    credit_note_id: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    purchase_id: str = Field(sa_column=Column(String(40), nullable=False))
    external_customer_id: str = Field(sa_column=Column(String(255), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    paid_credits_voided: str | None = Field(default=None, sa_column=Column(String(40)))
    bonus_credits: str | None = Field(default=None, sa_column=Column(String(40)))
    bonus_credits_voided: str | None = Field(default=None, sa_column=Column(String(40)))
    not_taken_back: str | None = Field(default=None, sa_column=Column(String(40)))
    lago_transaction_id: str | None = Field(default=None, sa_column=Column(String(255)))
    claimed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
