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

PENDING = "pending"
FORWARDED = "forwarded"
DEAD = "dead"


class UsageEvent(SQLModel, table=True):
    """The usage outbox: one row per accepted event, until Lago has it.

    ``payload`` is the exact JSON sent to Lago on every attempt (byte-identical resends);
    ``fingerprint`` is the hash of the event as the producer sent it, to tell an identical
    resend from a clashing one. Times are Unix seconds: the hot path stays dialect-neutral.
    ``next_attempt_at`` doubles as the claim lease while a batch is in flight.

    The one definition of the table for code: ``store`` takes its column lists and types
    from here, and ``tests/usage/test_schema.py`` checks it against the migrated schema.
    """

    __tablename__ = "usage_events"
    # The schema is Alembic's (0002, then 0008's leaner indexes); on PostgreSQL the unique key
    # is the index ``uq_usage_events_tx_subscription`` on (transaction_id,
    # external_subscription_id), on SQLite the constraint below (with the older
    # ``ix_usage_events_transaction_id`` beside it). Either way the key serves
    # ``ON CONFLICT (external_subscription_id, transaction_id)`` and lookups by transaction id.
    __table_args__ = (
        UniqueConstraint(
            "external_subscription_id", "transaction_id", name="uq_usage_events_subscription_tx"
        ),
        Index(
            "ix_usage_events_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_usage_events_dead",
            "id",
            postgresql_where=text("status = 'dead'"),
            sqlite_where=text("status = 'dead'"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    external_subscription_id: str = Field(sa_column=Column(String(255), nullable=False))
    transaction_id: str = Field(sa_column=Column(String(255), nullable=False))
    code: str = Field(sa_column=Column(String(255), nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    accepted_at: float = Field(sa_column=Column(Float, nullable=False))
    next_attempt_at: float = Field(sa_column=Column(Float, nullable=False))
    forwarded_at: float | None = Field(default=None, sa_column=Column(Float))
    needs_check: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    accepted_by: str = Field(sa_column=Column(String(100), nullable=False))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
