"""The inbound webhook inbox: one row per verified webhook, relayed when stored.

Times are Unix seconds (floats), as in the usage outbox and the relay: the claim path stays
dialect-neutral. ``next_attempt_at`` doubles as the claim lease while a row is being
handled. A row is relayed in the transaction that stores it (``relayed_at``); its status
then tracks the gateway's own handlers only: ``received`` (handlers still to run),
``handled``, or ``dead`` (a permanent failure or every retry spent, with ``last_error``).
``body`` is the provider's raw body, byte for byte (decoded as UTF-8), until the
retention job clears it on a handled row (``PRUNED_BODY``; the dedup keys stay).
"""

from __future__ import annotations

from sqlalchemy import (
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

RECEIVED = "received"
HANDLED = "handled"
DEAD = "dead"
STATUSES = (RECEIVED, HANDLED, DEAD)
# What a handled row's body becomes after the retention: never a verified body (a JSON object).
PRUNED_BODY = ""

LAGO = "lago"
STRIPE = "stripe"
SOURCES = (LAGO, STRIPE)

# The columns a webhook's row is stored with, in this order (``store.insert_new``), and the
# ones its handling fills in later; with the key ``id`` they name every column
# (tests/test_schema.py checks it), so a new column cannot be left out of the insert unseen.
STORED_COLUMNS = (
    "source",
    "provider_event_id",
    "event_type",
    "body",
    "body_sha256",
    "received_at",
    "status",
    "attempts",
    "next_attempt_at",
    "relayed_at",
)
HANDLING_COLUMNS = ("handled_at", "last_error", "handlers_done")


class InboundWebhook(SQLModel, table=True):
    """A verified webhook from Lago or Stripe, unique on (source, provider event id).

    ``body_sha256`` is unique per source too: Lago signs only the body, so a captured body
    resent under a fresh ``X-Lago-Unique-Key`` is a duplicate, not a new webhook.
    """

    __tablename__ = "inbound_webhooks"
    __table_args__ = (
        UniqueConstraint("source", "provider_event_id", name="uq_inbound_webhooks_source_event"),
        UniqueConstraint("source", "body_sha256", name="uq_inbound_webhooks_source_body"),
        Index(
            "ix_inbound_webhooks_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'received'"),
            sqlite_where=text("status = 'received'"),
        ),
        Index("ix_inbound_webhooks_status", "status"),
        Index(
            "ix_inbound_webhooks_prunable",
            "status",
            "id",
            postgresql_where=text("status = 'handled' AND body <> ''"),
            sqlite_where=text("status = 'handled' AND body <> ''"),
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True))
    source: str = Field(sa_column=Column(String(16), nullable=False))
    provider_event_id: str = Field(sa_column=Column(String(255), nullable=False))
    event_type: str = Field(sa_column=Column(String(255), nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    body_sha256: str = Field(sa_column=Column(String(64), nullable=False))
    received_at: float = Field(sa_column=Column(Float, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_attempt_at: float = Field(sa_column=Column(Float, nullable=False))
    handled_at: float | None = Field(default=None, sa_column=Column(Float))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    relayed_at: float | None = Field(default=None, sa_column=Column(Float))
    # JSON list of the handlers that already succeeded (a retry runs only the others).
    handlers_done: str | None = Field(default=None, sa_column=Column(Text))
