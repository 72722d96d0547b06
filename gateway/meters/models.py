"""The meters' tables: subscriptions' billing terms as Lago gave them, what each subscription
used per metric and billing period, the distinct values of unique-count metrics, and each
customer's token account (Lago's wallet balance and the tokens holds reserve).

Times are Unix seconds (floats), as in the usage outbox: the hot path stays dialect-neutral.
Units are floats: counts are exact to 2**53, sums of decimal properties carry binary
rounding, which reconciliation against Lago corrects.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, String, Text
from sqlmodel import Field, SQLModel


class MeterSubscription(SQLModel, table=True):
    """A subscription's billing terms: what its billing periods are computed from.

    Learned from Lago's answers (create, read), its subscription webhooks and the meters'
    sync; ``period_start``/``period_end`` are Lago's current billing period (its
    ``current_billing_period_started_at``/``_ending_at``) when it was learned.
    """

    __tablename__ = "meter_subscriptions"

    external_id: str = Field(sa_column=Column(String(255), primary_key=True))
    external_customer_id: str = Field(sa_column=Column(String(255), nullable=False, index=True))
    plan_code: str = Field(sa_column=Column(String(255), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    interval: str = Field(sa_column=Column(String(16), nullable=False))
    billing_time: str = Field(sa_column=Column(String(16), nullable=False))
    bill_charges_monthly: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    timezone: str = Field(sa_column=Column(String(64), nullable=False))
    subscription_at: float = Field(sa_column=Column(Float, nullable=False))
    started_at: float | None = Field(default=None, sa_column=Column(Float))
    ending_at: float | None = Field(default=None, sa_column=Column(Float))
    period_start: float | None = Field(default=None, sa_column=Column(Float))
    period_end: float | None = Field(default=None, sa_column=Column(Float))
    # Lago's GET /subscriptions/{id}/entitlements list (JSON): the plan's features with this
    # subscription's overrides; NULL when not known (the plan's, from the catalog, apply).
    entitlements: str | None = Field(default=None, sa_column=Column(Text))
    learned_at: float = Field(sa_column=Column(Float, nullable=False))


class UsageMeter(SQLModel, table=True):
    """What one subscription used of one metric in one billing period.

    ``group_key`` is ``""`` for the metric as a whole, else one filter value
    (``quality=hd``); a meter is the combination of its rows over ``shard``. ``units`` is the
    metric's aggregation over the accepted events (pending or forwarded); ``held`` what open
    holds reserve on top of it.
    """

    __tablename__ = "usage_meters"

    external_subscription_id: str = Field(sa_column=Column(String(255), primary_key=True))
    metric: str = Field(sa_column=Column(String(255), primary_key=True))
    period_start: float = Field(sa_column=Column(Float, primary_key=True))
    group_key: str = Field(sa_column=Column(String(255), primary_key=True))
    # Which writer's row: each outbox writer adds to its own (1..SHARDS), holds to shard 0,
    # so concurrent commits never wait on one another's meter rows. Reads combine shards.
    shard: int = Field(sa_column=Column(Integer, primary_key=True))
    aggregation: str = Field(sa_column=Column(String(16), nullable=False))
    units: float = Field(sa_column=Column(Float, nullable=False))
    events: int = Field(sa_column=Column(BigInteger, nullable=False))
    latest_at: float | None = Field(default=None, sa_column=Column(Float))
    held: float = Field(default=0.0, sa_column=Column(Float, nullable=False, server_default="0"))
    updated_at: float = Field(sa_column=Column(Float, nullable=False))


class UsageMeterValue(SQLModel, table=True):
    """A value a unique-count metric has seen in a period (its meter counts these rows)."""

    __tablename__ = "usage_meter_values"

    external_subscription_id: str = Field(sa_column=Column(String(255), primary_key=True))
    metric: str = Field(sa_column=Column(String(255), primary_key=True))
    period_start: float = Field(sa_column=Column(Float, primary_key=True))
    group_key: str = Field(sa_column=Column(String(255), primary_key=True))
    value: str = Field(sa_column=Column(String(255), primary_key=True))


class MeterAccount(SQLModel, table=True):
    """A customer's token account: Lago's wallet when last read (``credits`` is its
    settled balance), and the tokens open holds reserve. Holds of one customer take this
    row's lock, one at a time.

    ``credits`` and ``held_tokens`` are decimal text (Lago's credits are decimals).
    """

    __tablename__ = "meter_accounts"

    external_customer_id: str = Field(sa_column=Column(String(255), primary_key=True))
    credits: str = Field(sa_column=Column(String(40), nullable=False, server_default="0"))
    held_tokens: str = Field(sa_column=Column(String(40), nullable=False, server_default="0"))
    # As Lago gave them when the wallet was read: paid credits not settled yet (their credit
    # invoice unpaid), and Lago's ongoing balance (net of its current usage).
    pending_credits: str = Field(sa_column=Column(String(40), nullable=False, server_default="0"))
    ongoing_credits: str = Field(sa_column=Column(String(40), nullable=False, server_default="0"))
    # The wallet's recurring transaction rules as Lago serializes them (JSON): the next grant.
    wallet_rules: str | None = Field(default=None, sa_column=Column(Text))
    lago_wallet_id: str | None = Field(default=None, sa_column=Column(String(255)))
    wallet_read_at: float | None = Field(default=None, sa_column=Column(Float))
    touched_at: float = Field(sa_column=Column(Float, nullable=False))


class MeterAlert(SQLModel, table=True):
    """An alert the gateway raised (``gateway/meters/alerts.py``): the row decides that it is
    raised once, and is written in the transaction that enqueues its relay message.

    ``kind`` ``usage``: ``subject`` is a subscription whose usage of ``metric`` reached
    ``threshold`` percent of what its plan includes in the billing period ``period_start``
    (``round`` 0). ``kind`` ``tokens``: ``subject`` is a customer whose tokens available fell
    below ``threshold`` (``metric`` ``""``, ``period_start`` 0); ``resolved_at`` is set once
    they are back at or above it, and the next fall is the next ``round``.
    """

    __tablename__ = "meter_alerts"

    subject: str = Field(sa_column=Column(String(255), primary_key=True))
    kind: str = Field(sa_column=Column(String(16), primary_key=True))
    metric: str = Field(sa_column=Column(String(255), primary_key=True))
    period_start: float = Field(sa_column=Column(Float, primary_key=True))
    threshold: float = Field(sa_column=Column(Float, primary_key=True))
    round: int = Field(sa_column=Column(BigInteger, primary_key=True))
    value: str = Field(sa_column=Column(String(40), nullable=False))
    message_id: str = Field(sa_column=Column(String(255), nullable=False))
    fired_at: float = Field(sa_column=Column(Float, nullable=False))
    resolved_at: float | None = Field(default=None, sa_column=Column(Float))


__all__ = ["MeterAccount", "MeterAlert", "MeterSubscription", "UsageMeter", "UsageMeterValue"]
