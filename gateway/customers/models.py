from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from gateway.db import BIG_ID, UTCDateTime


class CustomerLink(SQLModel, table=True):
    """One customer: its external id, Lago's id for it and the Stripe customer linked to it.

    The Stripe id is stored as soon as Stripe answers, before Lago is called, so no Stripe
    customer the gateway created is ever without its link.
    """

    __tablename__ = "customer_links"
    __table_args__ = (
        UniqueConstraint("external_id", name="uq_customer_links_external_id"),
        Index("ix_customer_links_stripe_customer_id", "stripe_customer_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True))
    external_id: str = Field(sa_column=Column(String(255), nullable=False))
    lago_customer_id: str | None = Field(default=None, sa_column=Column(String(64)))
    stripe_customer_id: str | None = Field(default=None, sa_column=Column(String(255)))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
