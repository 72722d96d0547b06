"""Local meters and holds: subscriptions' billing terms, usage per subscription, metric and
billing period (kept in the transaction that accepts each event), unique-count values,
customers' token accounts, and holds.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.String(255)


def upgrade() -> None:
    op.create_table(
        "meter_subscriptions",
        sa.Column("external_id", _ID, primary_key=True),
        sa.Column("external_customer_id", _ID, nullable=False),
        sa.Column("plan_code", _ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("interval", sa.String(16), nullable=False),
        sa.Column("billing_time", sa.String(16), nullable=False),
        sa.Column("bill_charges_monthly", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("subscription_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("ending_at", sa.Float),
        sa.Column("period_start", sa.Float),
        sa.Column("period_end", sa.Float),
        sa.Column("entitlements", sa.Text),
        sa.Column("learned_at", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_meter_subscriptions_external_customer_id",
        "meter_subscriptions",
        ["external_customer_id"],
    )
    op.create_table(
        "usage_meters",
        sa.Column("external_subscription_id", _ID, primary_key=True),
        sa.Column("metric", _ID, primary_key=True),
        sa.Column("period_start", sa.Float, primary_key=True),
        sa.Column("group_key", _ID, primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("aggregation", sa.String(16), nullable=False),
        sa.Column("units", sa.Float, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("latest_at", sa.Float),
        sa.Column("held", sa.Float, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "usage_meter_values",
        sa.Column("external_subscription_id", _ID, primary_key=True),
        sa.Column("metric", _ID, primary_key=True),
        sa.Column("period_start", sa.Float, primary_key=True),
        sa.Column("group_key", _ID, primary_key=True),
        sa.Column("value", _ID, primary_key=True),
    )
    op.create_table(
        "meter_accounts",
        sa.Column("external_customer_id", _ID, primary_key=True),
        sa.Column("credits", sa.String(40), nullable=False, server_default="0"),
        sa.Column("held_tokens", sa.String(40), nullable=False, server_default="0"),
        sa.Column("pending_credits", sa.String(40), nullable=False, server_default="0"),
        sa.Column("ongoing_credits", sa.String(40), nullable=False, server_default="0"),
        sa.Column("wallet_rules", sa.Text),
        sa.Column("lago_wallet_id", _ID),
        sa.Column("wallet_read_at", sa.Float),
        sa.Column("touched_at", sa.Float, nullable=False),
    )
    op.create_table(
        "holds",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("external_subscription_id", _ID, nullable=False),
        sa.Column("external_customer_id", _ID, nullable=False),
        sa.Column("transaction_id", _ID, nullable=False),
        sa.Column("code", _ID, nullable=False),
        sa.Column("properties", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("period_start", sa.Float, nullable=False),
        sa.Column("units", sa.Float, nullable=False),
        sa.Column("allowance_units", sa.Float, nullable=False),
        sa.Column("tokens", sa.String(40), nullable=False),
        sa.Column("paid_from", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("settled_at", sa.Float),
        sa.Column("captured_units", sa.Float),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.UniqueConstraint(
            "external_subscription_id", "transaction_id", name="uq_holds_subscription_tx"
        ),
    )
    op.create_index(
        "ix_holds_expiring",
        "holds",
        ["expires_at"],
        postgresql_where=sa.text("status = 'held'"),
        sqlite_where=sa.text("status = 'held'"),
    )


def downgrade() -> None:
    op.drop_table("holds")
    op.drop_table("meter_accounts")
    op.drop_table("usage_meter_values")
    op.drop_table("usage_meters")
    op.drop_table("meter_subscriptions")
