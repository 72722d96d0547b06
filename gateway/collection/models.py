"""Collection tables: one row per payment attempt on a Lago invoice, one per refund.

Times are Unix seconds (floats), as in the outbox, the inbox and the relay.
``claimed_until`` is the claim lease of a row whose Stripe call may be in flight: a row
still ``pending`` with no Stripe object after its lease is driven again with the same
idempotency key, so a crash between the Stripe call and its record reuses Stripe's object.
A partial unique index allows one in-flight attempt per invoice across all processes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from gateway.db import BIG_ID

# Attempt statuses, in the order the state machine allows (states.RANK).
PENDING = "pending"
REQUIRES_ACTION = "requires_action"
PROCESSING = "processing"
FAILED = "failed"
CANCELED = "canceled"
SUCCEEDED = "succeeded"
DISPUTED = "disputed"
REFUNDED = "refunded"
STATUSES = (PENDING, REQUIRES_ACTION, PROCESSING, FAILED, CANCELED, SUCCEEDED, DISPUTED, REFUNDED)
IN_FLIGHT = (PENDING, PROCESSING)

# Attempt kinds: charged off-session by the gateway, or paid by the customer on Checkout.
OFF_SESSION = "off_session"
CHECKOUT = "checkout"


class Collection(SQLModel, table=True):
    """One attempt to collect one Lago invoice through Stripe."""

    __tablename__ = "collections"
    __table_args__ = (
        UniqueConstraint("invoice_id", "attempt", name="uq_collections_invoice_attempt"),
        UniqueConstraint("idempotency_key", name="uq_collections_idempotency_key"),
        Index("uq_collections_payment_intent", "payment_intent_id", unique=True),
        Index(
            "uq_collections_one_in_flight",
            "invoice_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'processing')"),
            sqlite_where=text("status IN ('pending', 'processing')"),
        ),
        Index("ix_collections_status_updated", "status", "updated_at"),
        Index("ix_collections_next_retry", "next_retry_at"),
        Index("ix_collections_customer", "external_customer_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True))
    invoice_id: str = Field(sa_column=Column(String(64), nullable=False))
    invoice_number: str | None = Field(default=None, sa_column=Column(String(100)))
    invoice_type: str | None = Field(default=None, sa_column=Column(String(32)))
    attempt: int = Field(sa_column=Column(Integer, nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    external_customer_id: str = Field(sa_column=Column(String(255), nullable=False))
    stripe_customer_id: str | None = Field(default=None, sa_column=Column(String(255)))
    payment_method_id: str | None = Field(default=None, sa_column=Column(String(255)))
    payment_intent_id: str | None = Field(default=None, sa_column=Column(String(255)))
    checkout_session_id: str | None = Field(default=None, sa_column=Column(String(255)))
    payment_link: str | None = Field(default=None, sa_column=Column(Text))
    link_expires_at: float | None = Field(default=None, sa_column=Column(Float))
    amount_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    status: str = Field(sa_column=Column(String(24), nullable=False))
    idempotency_key: str = Field(sa_column=Column(String(255), nullable=False))
    claimed_until: float | None = Field(default=None, sa_column=Column(Float))
    next_retry_at: float | None = Field(default=None, sa_column=Column(Float))
    # The payment status last written to Lago for this attempt (None: nothing to write yet).
    lago_status: str | None = Field(default=None, sa_column=Column(String(16)))
    failure_code: str | None = Field(default=None, sa_column=Column(String(100)))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    refunded_amount_cents: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    dispute_id: str | None = Field(default=None, sa_column=Column(String(255)))
    dispute_status: str | None = Field(default=None, sa_column=Column(String(40)))
    created_by: str = Field(sa_column=Column(String(100), nullable=False))
    created_at: float = Field(sa_column=Column(Float, nullable=False))
    updated_at: float = Field(sa_column=Column(Float, nullable=False))


class CollectionRefund(SQLModel, table=True):
    """A Stripe refund for the refund part of one Lago credit note."""

    __tablename__ = "collection_refunds"
    __table_args__ = (
        UniqueConstraint("credit_note_id", name="uq_collection_refunds_credit_note"),
        Index("uq_collection_refunds_stripe_refund", "stripe_refund_id", unique=True),
        Index("ix_collection_refunds_created", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True))
    credit_note_id: str = Field(sa_column=Column(String(64), nullable=False))
    credit_note_number: str | None = Field(default=None, sa_column=Column(String(100)))
    invoice_id: str = Field(sa_column=Column(String(64), nullable=False))
    collection_id: int | None = Field(default=None, sa_column=Column(BIG_ID))
    payment_intent_id: str | None = Field(default=None, sa_column=Column(String(255)))
    stripe_refund_id: str | None = Field(default=None, sa_column=Column(String(255)))
    amount_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    status: str = Field(sa_column=Column(String(24), nullable=False))
    idempotency_key: str = Field(sa_column=Column(String(255), nullable=False))
    claimed_until: float | None = Field(default=None, sa_column=Column(Float))
    lago_status: str | None = Field(default=None, sa_column=Column(String(16)))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: float = Field(sa_column=Column(Float, nullable=False))
    updated_at: float = Field(sa_column=Column(Float, nullable=False))
