"""Webhook retention: a partial index on the handled inbound webhooks that still hold a body.

Pruned rows stay in ``inbound_webhooks`` for good (their keys deduplicate replays), so the
retention job starts its walk from this index instead of scanning every row it already
cleared. The relay side needs none: its messages are deleted, and the deliveries and attempts
are found through their existing ``message_id`` indexes.

PostgreSQL builds the index CONCURRENTLY: the upgrade does not stop webhook intake.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

NAME = "ix_inbound_webhooks_prunable"
PREDICATE = "status = 'handled' AND body <> ''"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(
            NAME, "inbound_webhooks", ["status", "id"], sqlite_where=sa.text(PREDICATE)
        )
        return
    with op.get_context().autocommit_block():
        # A build that failed half-way leaves an invalid index: start such a one again.
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
        op.execute(f"CREATE INDEX CONCURRENTLY {NAME} ON inbound_webhooks (status, id) WHERE {PREDICATE}")


def downgrade() -> None:
    op.drop_index(NAME, "inbound_webhooks")
