from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from gateway.db import UTCDateTime

IN_PROGRESS = "in_progress"
DONE = "done"
FAILED = "failed"


class PackPurchase(SQLModel, table=True):
    """One token pack purchase, and the idempotency record of its request.

    The row is committed ``in_progress`` before Lago is called, so a concurrent duplicate
    (same caller, same ``Idempotency-Key``) finds it and waits instead of buying twice.
    ``done`` rows keep the answer that repeats replay; ``failed`` rows (Lago unreachable,
    outcome unknown) may be claimed again, and the retry first looks for the purchase in
    Lago by ``purchase_id``. Purchases without a key have a NULL key (never unique-clash).
    """

    __tablename__ = "pack_purchases"
    __table_args__ = (
        UniqueConstraint("actor", "idempotency_key", name="uq_pack_purchases_actor_key"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    purchase_id: str = Field(sa_column=Column(String(40), nullable=False, unique=True))
    actor: str = Field(sa_column=Column(String(100), nullable=False))
    idempotency_key: str | None = Field(default=None, sa_column=Column(String(255)))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    external_customer_id: str = Field(sa_column=Column(String(255), nullable=False, index=True))
    pack_code: str = Field(sa_column=Column(String(255), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    response_status: int | None = Field(default=None, sa_column=Column(Integer))
    response_body: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    claimed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
