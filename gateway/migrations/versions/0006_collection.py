"""Collection attempts (Stripe PaymentIntents for Lago invoices) and refunds.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
IN_FLIGHT = sa.text("status IN ('pending', 'processing')")


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("invoice_number", sa.String(100)),
        sa.Column("invoice_type", sa.String(32)),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("external_customer_id", sa.String(255), nullable=False),
        sa.Column("stripe_customer_id", sa.String(255)),
        sa.Column("payment_method_id", sa.String(255)),
        sa.Column("payment_intent_id", sa.String(255)),
        sa.Column("checkout_session_id", sa.String(255)),
        sa.Column("payment_link", sa.Text),
        sa.Column("link_expires_at", sa.Float),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("claimed_until", sa.Float),
        sa.Column("next_retry_at", sa.Float),
        sa.Column("lago_status", sa.String(16)),
        sa.Column("failure_code", sa.String(100)),
        sa.Column("last_error", sa.Text),
        sa.Column("refunded_amount_cents", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("dispute_id", sa.String(255)),
        sa.Column("dispute_status", sa.String(40)),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("invoice_id", "attempt", name="uq_collections_invoice_attempt"),
        sa.UniqueConstraint("idempotency_key", name="uq_collections_idempotency_key"),
    )
    op.create_index(
        "uq_collections_payment_intent", "collections", ["payment_intent_id"], unique=True
    )
    op.create_index(
        "uq_collections_one_in_flight",
        "collections",
        ["invoice_id"],
        unique=True,
        postgresql_where=IN_FLIGHT,
        sqlite_where=IN_FLIGHT,
    )
    op.create_index("ix_collections_status_updated", "collections", ["status", "updated_at"])
    op.create_index("ix_collections_next_retry", "collections", ["next_retry_at"])
    op.create_index("ix_collections_customer", "collections", ["external_customer_id"])

    op.create_table(
        "collection_refunds",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("credit_note_id", sa.String(64), nullable=False),
        sa.Column("credit_note_number", sa.String(100)),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("collection_id", BIGID),
        sa.Column("payment_intent_id", sa.String(255)),
        sa.Column("stripe_refund_id", sa.String(255)),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("claimed_until", sa.Float),
        sa.Column("lago_status", sa.String(16)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("credit_note_id", name="uq_collection_refunds_credit_note"),
    )
    op.create_index(
        "uq_collection_refunds_stripe_refund",
        "collection_refunds",
        ["stripe_refund_id"],
        unique=True,
    )
    op.create_index("ix_collection_refunds_created", "collection_refunds", ["created_at"])


def downgrade() -> None:
    op.drop_table("collection_refunds")
    op.drop_table("collections")
