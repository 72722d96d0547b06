"""Relay tables: subscriber endpoints, messages, one delivery per (message, endpoint), attempts.

Times are Unix seconds (floats), as in the usage outbox: the delivery hot path stays
dialect-neutral. ``relay_deliveries.next_attempt_at`` doubles as the claim lease while an
attempt is in flight. ``relay_messages.body`` is the envelope exactly as sent, so every
retry carries byte-identical content under the same ``webhook-id``.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
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

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
CANCELLED = "cancelled"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED, CANCELLED)

SOURCES = ("lago", "stripe", "gateway")

# A delivery is created (enqueued, or queued again) with these columns, and its attempts fill
# in the others; with the key ``id`` they name every column (tests/test_schema.py checks it),
# so a new column cannot be left out of the inserts unseen.
DELIVERY_QUEUED_COLUMNS = (
    "message_id",
    "endpoint_id",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
DELIVERY_ATTEMPTED_COLUMNS = ("last_attempt_at", "delivered_at", "last_status", "last_error")


class RelayEndpoint(SQLModel, table=True):
    """A subscriber: where to deliver, which types, and the secret that signs."""

    __tablename__ = "relay_endpoints"

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    url: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # JSON list of patterns, stored as text so raw SQL reads it the same on both databases.
    filter_types: str = Field(sa_column=Column(Text, nullable=False))
    enabled: bool = Field(sa_column=Column(Boolean, nullable=False))
    secret: str = Field(sa_column=Column(String(100), nullable=False))
    previous_secret: str | None = Field(default=None, sa_column=Column(String(100)))
    previous_secret_expires_at: float | None = Field(default=None, sa_column=Column(Float))
    disabled_reason: str | None = Field(default=None, sa_column=Column(String(255)))
    failing_since: float | None = Field(default=None, sa_column=Column(Float))
    created_at: float = Field(sa_column=Column(Float, nullable=False))
    updated_at: float = Field(sa_column=Column(Float, nullable=False))


class RelayMessage(SQLModel, table=True):
    """One event to relay, under a stable id (the ``webhook-id`` of every attempt)."""

    __tablename__ = "relay_messages"
    __table_args__ = (
        UniqueConstraint("id", name="uq_relay_messages_id"),
        Index("ix_relay_messages_type_seq", "type", "seq"),
        Index("ix_relay_messages_source_seq", "source", "seq"),
    )

    seq: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True))
    id: str = Field(sa_column=Column(String(255), nullable=False))
    type: str = Field(sa_column=Column(String(255), nullable=False))
    source: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: float = Field(sa_column=Column(Float, nullable=False))
    received_at: float = Field(sa_column=Column(Float, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))


class RelayDelivery(SQLModel, table=True):
    """A message owed to one endpoint: its state and when it is next due."""

    __tablename__ = "relay_deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "endpoint_id", name="uq_relay_deliveries_message_endpoint"),
        Index(
            "ix_relay_deliveries_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_relay_deliveries_endpoint_status", "endpoint_id", "status", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True))
    message_id: str = Field(sa_column=Column(String(255), nullable=False))
    endpoint_id: str = Field(sa_column=Column(String(40), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_attempt_at: float = Field(sa_column=Column(Float, nullable=False))
    created_at: float = Field(sa_column=Column(Float, nullable=False))
    last_attempt_at: float | None = Field(default=None, sa_column=Column(Float))
    delivered_at: float | None = Field(default=None, sa_column=Column(Float))
    last_status: int | None = Field(default=None, sa_column=Column(Integer))
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class RelayAttempt(SQLModel, table=True):
    """One HTTP attempt: what the subscriber answered (first 2 KB), how fast, or the error."""

    __tablename__ = "relay_attempts"
    __table_args__ = (
        Index("ix_relay_attempts_message", "message_id", "id"),
        Index("ix_relay_attempts_delivery", "delivery_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True))
    delivery_id: int = Field(sa_column=Column(BIG_ID, nullable=False))
    message_id: str = Field(sa_column=Column(String(255), nullable=False))
    endpoint_id: str = Field(sa_column=Column(String(40), nullable=False))
    attempt: int = Field(sa_column=Column(Integer, nullable=False))
    attempted_at: float = Field(sa_column=Column(Float, nullable=False))
    outcome: str = Field(sa_column=Column(String(16), nullable=False))
    status: int | None = Field(default=None, sa_column=Column(Integer))
    latency_ms: float = Field(sa_column=Column(Float, nullable=False))
    response_body: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
