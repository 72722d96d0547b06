"""Inbound webhooks (the verified inbox).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_webhooks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("provider_event_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("handled_at", sa.Float),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("source", "provider_event_id", name="uq_inbound_webhooks_source_event"),
        sa.UniqueConstraint("source", "body_sha256", name="uq_inbound_webhooks_source_body"),
    )
    op.create_index(
        "ix_inbound_webhooks_due",
        "inbound_webhooks",
        ["next_attempt_at", "id"],
        postgresql_where=sa.text("status = 'received'"),
        sqlite_where=sa.text("status = 'received'"),
    )
    op.create_index("ix_inbound_webhooks_status", "inbound_webhooks", ["status"])


def downgrade() -> None:
    op.drop_table("inbound_webhooks")
