"""Usage outbox.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("external_subscription_id", sa.String(255), nullable=False),
        sa.Column("transaction_id", sa.String(255), nullable=False),
        sa.Column("code", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("accepted_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("forwarded_at", sa.Float),
        sa.Column("needs_check", sa.Integer, nullable=False, server_default="0"),
        sa.Column("accepted_by", sa.String(100), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint(
            "external_subscription_id", "transaction_id", name="uq_usage_events_subscription_tx"
        ),
    )
    op.create_index(
        "ix_usage_events_due",
        "usage_events",
        ["next_attempt_at", "id"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_usage_events_status", "usage_events", ["status"])
    op.create_index("ix_usage_events_transaction_id", "usage_events", ["transaction_id"])


def downgrade() -> None:
    op.drop_table("usage_events")
