"""Every migration applies, and rolls back, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect

from gateway.db import sync_url
from gateway.migrations.runner import alembic_config, current_and_head, upgrade


def _indexes(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        inspector = inspect(engine)
        names = {index["name"] for index in inspector.get_indexes("usage_events")}
        names |= {c["name"] for c in inspector.get_unique_constraints("usage_events")}
    finally:
        engine.dispose()
    return {name for name in names if name}


def test_downgrade_to_nothing_and_upgrade_again(backend: str, database_url: str) -> None:
    indexes = _indexes(database_url)
    assert "ix_usage_events_dead" in indexes and "ix_usage_events_status" not in indexes
    if backend == "postgres":
        assert "uq_usage_events_tx_subscription" in indexes
        assert "ix_usage_events_transaction_id" not in indexes
    command.downgrade(alembic_config(database_url), "0007")
    assert "ix_usage_events_status" in _indexes(database_url)
    command.downgrade(alembic_config(database_url), "base")
    assert current_and_head(database_url)[0] is None
    upgrade(database_url)
    current, head = current_and_head(database_url)
    assert current == head
    assert _indexes(database_url) == indexes
