"""Leaner usage outbox indexes: every accepted event paid for five index entries, and every
forwarded one for a fresh entry in each (a status change is never a HOT update).

- ``ix_usage_events_status`` (all rows, three values) becomes ``ix_usage_events_dead``,
  partial on dead rows: the only status the gateway looks rows up by outside the due index.
- On PostgreSQL the unique key leads with ``transaction_id``, so the lookup by transaction id
  alone (``GET /gateway/events/{transaction_id}``) uses it and ``ix_usage_events_transaction_id``
  goes. ``ON CONFLICT (external_subscription_id, transaction_id)`` infers a unique index from
  its set of columns, in any order. On SQLite (the embedded default) the constraint is part of
  the table and stays.

PostgreSQL builds the new indexes CONCURRENTLY: the upgrade does not stop ingestion.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


_NEW_INDEXES = {
    "ix_usage_events_dead": "INDEX CONCURRENTLY {name} ON usage_events (id) WHERE status = 'dead'",
    "uq_usage_events_tx_subscription": (
        "UNIQUE INDEX CONCURRENTLY {name} ON usage_events (transaction_id, external_subscription_id)"
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(
            "ix_usage_events_dead", "usage_events", ["id"], sqlite_where=sa.text("status = 'dead'")
        )
        op.drop_index("ix_usage_events_status", "usage_events")
        return
    with op.get_context().autocommit_block():
        # A build that failed half-way leaves an invalid index: start such a one again.
        for name, definition in _NEW_INDEXES.items():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE {definition.format(name=name)}")
    op.execute("ALTER TABLE usage_events DROP CONSTRAINT uq_usage_events_subscription_tx")
    op.drop_index("ix_usage_events_transaction_id", "usage_events")
    op.drop_index("ix_usage_events_status", "usage_events")


def downgrade() -> None:
    op.create_index("ix_usage_events_status", "usage_events", ["status"])
    op.drop_index("ix_usage_events_dead", "usage_events")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_usage_events_transaction_id", "usage_events", ["transaction_id"])
        op.execute(
            "ALTER TABLE usage_events ADD CONSTRAINT uq_usage_events_subscription_tx "
            "UNIQUE (external_subscription_id, transaction_id)"
        )
        op.drop_index("uq_usage_events_tx_subscription", "usage_events")
