"""Customer links (external id, Lago id, Stripe customer).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("lago_customer_id", sa.String(64)),
        sa.Column("stripe_customer_id", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("external_id", name="uq_customer_links_external_id"),
    )
    op.create_index(
        "ix_customer_links_stripe_customer_id", "customer_links", ["stripe_customer_id"]
    )


def downgrade() -> None:
    op.drop_table("customer_links")
