"""Meter alerts: one row per alert the gateway raised (a subscription's usage reaching a
percentage of its plan's allowance in a billing period; a customer's tokens falling below a
threshold), written with its relay message, so each is raised once.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ID = sa.String(255)


def upgrade() -> None:
    op.create_table(
        "meter_alerts",
        sa.Column("subject", _ID, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("metric", _ID, primary_key=True),
        sa.Column("period_start", sa.Float, primary_key=True),
        sa.Column("threshold", sa.Float, primary_key=True),
        sa.Column("round", sa.BigInteger, primary_key=True),
        sa.Column("value", sa.String(40), nullable=False),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("fired_at", sa.Float, nullable=False),
        sa.Column("resolved_at", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("meter_alerts")
