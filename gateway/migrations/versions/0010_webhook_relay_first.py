"""Inbound webhooks are relayed when stored; handlers settle on their own.

- ``relayed_at``: when the webhook's relay message was written (in the transaction that
  stored the webhook). Rows already handled were relayed when handled; rows still waiting or
  given up before this revision were never relayed, so it stays NULL and the processor relays
  them once on start.
- ``handlers_done``: a JSON list of the handlers that already succeeded for the row, so a
  retry or a replay runs only the others.
- ``failed`` becomes ``dead``: a webhook whose handling cannot succeed without a fix
  (a permanent error, or every retry spent), kept with its reason until replayed.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_webhooks") as batch:
        batch.add_column(sa.Column("relayed_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("handlers_done", sa.Text(), nullable=True))
    op.execute("UPDATE inbound_webhooks SET relayed_at = handled_at WHERE status = 'handled'")
    op.execute("UPDATE inbound_webhooks SET status = 'dead' WHERE status = 'failed'")


def downgrade() -> None:
    op.execute("UPDATE inbound_webhooks SET status = 'failed' WHERE status = 'dead'")
    with op.batch_alter_table("inbound_webhooks") as batch:
        batch.drop_column("handlers_done")
        batch.drop_column("relayed_at")
