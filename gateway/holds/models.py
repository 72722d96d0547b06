"""The ``holds`` table: one reservation per (subscription, transaction id)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

HELD = "held"
CAPTURED = "captured"
RELEASED = "released"
EXPIRED = "expired"


class Hold(SQLModel, table=True):
    """What a generation reserved: ``units`` of ``metric`` in the period starting at
    ``period_start``, ``allowance_units`` of them from the plan's included usage and
    ``tokens`` (decimal text) from the customer's token account; ``beyond`` says how the
    rest is paid (``invoice``: billed in arrears, nothing reserved).

    ``properties`` is the event's JSON as held; a capture may replace it with the final one.
    """

    __tablename__ = "holds"
    __table_args__ = (
        UniqueConstraint(
            "external_subscription_id", "transaction_id", name="uq_holds_subscription_tx"
        ),
        Index(
            "ix_holds_expiring",
            "expires_at",
            postgresql_where=text("status = 'held'"),
            sqlite_where=text("status = 'held'"),
        ),
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    external_subscription_id: str = Field(sa_column=Column(String(255), nullable=False))
    external_customer_id: str = Field(sa_column=Column(String(255), nullable=False))
    transaction_id: str = Field(sa_column=Column(String(255), nullable=False))
    code: str = Field(sa_column=Column(String(255), nullable=False))
    properties: str = Field(sa_column=Column(Text, nullable=False))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    period_start: float = Field(sa_column=Column(Float, nullable=False))
    units: float = Field(sa_column=Column(Float, nullable=False))
    allowance_units: float = Field(sa_column=Column(Float, nullable=False))
    tokens: str = Field(sa_column=Column(String(40), nullable=False))
    paid_from: str = Field(sa_column=Column(String(16), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: float = Field(sa_column=Column(Float, nullable=False))
    expires_at: float = Field(sa_column=Column(Float, nullable=False))
    settled_at: float | None = Field(default=None, sa_column=Column(Float))
    captured_units: float | None = Field(default=None, sa_column=Column(Float))
    actor: str = Field(sa_column=Column(String(100), nullable=False))
