"""Token pack purchases (their Idempotency-Key records and the bonus each one owes).

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
        sa.Column("lago_wallet_id", sa.String(255)),
        sa.Column("lago_transaction_id", sa.String(255)),
        sa.Column("lago_invoice_id", sa.String(255)),
        sa.Column("bonus_status", sa.String(24)),
        sa.Column("bonus_credits", sa.String(40)),
        sa.Column("bonus_transaction_id", sa.String(255)),
        sa.Column("bonus_checks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("bonus_next_check_at", TSTZ),
        sa.Column("bonus_lease_until", TSTZ),
        sa.Column("bonus_settled_at", TSTZ),
        sa.UniqueConstraint("actor", "idempotency_key", name="uq_pack_purchases_actor_key"),
    )
    op.create_index(
        "ix_pack_purchases_external_customer_id", "pack_purchases", ["external_customer_id"]
    )
    op.create_index(
        "ix_pack_purchases_lago_transaction_id", "pack_purchases", ["lago_transaction_id"]
    )
    op.create_index("ix_pack_purchases_lago_invoice_id", "pack_purchases", ["lago_invoice_id"])
    op.create_index(
        "ix_pack_purchases_bonus_due", "pack_purchases", ["bonus_status", "bonus_next_check_at"]
    )


def downgrade() -> None:
    op.drop_table("pack_purchases")
