"""Relay: subscriber endpoints, messages, deliveries (message x endpoint), attempts.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "relay_endpoints",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("filter_types", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("previous_secret", sa.String(100)),
        sa.Column("previous_secret_expires_at", sa.Float),
        sa.Column("disabled_reason", sa.String(255)),
        sa.Column("failing_since", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "relay_messages",
        sa.Column("seq", BIGID, primary_key=True),
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.UniqueConstraint("id", name="uq_relay_messages_id"),
    )
    op.create_index("ix_relay_messages_type_seq", "relay_messages", ["type", "seq"])
    op.create_index("ix_relay_messages_source_seq", "relay_messages", ["source", "seq"])
    op.create_table(
        "relay_deliveries",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("endpoint_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_attempt_at", sa.Float),
        sa.Column("delivered_at", sa.Float),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint(
            "message_id", "endpoint_id", name="uq_relay_deliveries_message_endpoint"
        ),
    )
    op.create_index(
        "ix_relay_deliveries_due",
        "relay_deliveries",
        ["next_attempt_at", "id"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_relay_deliveries_endpoint_status",
        "relay_deliveries",
        ["endpoint_id", "status", "created_at"],
    )
    op.create_table(
        "relay_attempts",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("delivery_id", BIGID, nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("endpoint_id", sa.String(40), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("response_body", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_relay_attempts_message", "relay_attempts", ["message_id", "id"])
    op.create_index("ix_relay_attempts_delivery", "relay_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("relay_attempts")
    op.drop_table("relay_deliveries")
    op.drop_table("relay_messages")
    op.drop_table("relay_endpoints")
