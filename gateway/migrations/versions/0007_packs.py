"""Token pack purchases (and their Idempotency-Key records).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TSTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pack_purchases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("purchase_id", sa.String(40), nullable=False, unique=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("external_customer_id", sa.String(255), nullable=False),
        sa.Column("pack_code", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("response_status", sa.Integer),
        sa.Column("response_body", sa.Text),
        sa.Column("created_at", TSTZ, nullable=False),
        sa.Column("claimed_at", TSTZ, nullable=False),
        sa.Column("completed_at", TSTZ),
        sa.UniqueConstraint("actor", "idempotency_key", name="uq_pack_purchases_actor_key"),
    )
    op.create_index(
        "ix_pack_purchases_external_customer_id", "pack_purchases", ["external_customer_id"]
    )


def downgrade() -> None:
    op.drop_table("pack_purchases")
