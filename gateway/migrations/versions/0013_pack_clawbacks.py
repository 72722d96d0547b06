"""Token pack clawbacks: one row per credit note on a pack's credit invoice, claimed before
Lago is called, saying what was taken back from the token wallet and what was not.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.String(255)
_CREDITS = sa.String(40)
TSTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pack_clawbacks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("credit_note_id", _ID, nullable=False, unique=True),
        sa.Column("purchase_id", sa.String(40), nullable=False),
        sa.Column("external_customer_id", _ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("paid_credits_voided", _CREDITS),
        sa.Column("bonus_credits", _CREDITS),
        sa.Column("bonus_credits_voided", _CREDITS),
        sa.Column("not_taken_back", _CREDITS),
        sa.Column("lago_transaction_id", _ID),
        sa.Column("claimed_until", TSTZ),
        sa.Column("created_at", TSTZ, nullable=False),
        sa.Column("updated_at", TSTZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pack_clawbacks")
