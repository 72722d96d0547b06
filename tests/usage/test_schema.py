"""The ``UsageEvent`` model, where ``store`` takes its columns, is the migrated table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, inspect

from gateway.db import sync_url
from gateway.usage import store
from gateway.usage.models import UsageEvent

TABLE = UsageEvent.__table__  # type: ignore[attr-defined]


def _migrated(url: str) -> dict[str, Any]:
    engine = create_engine(sync_url(url))
    try:
        inspector = inspect(engine)
        return {
            "columns": inspector.get_columns("usage_events"),
            "indexes": inspector.get_indexes("usage_events"),
            "unique": inspector.get_unique_constraints("usage_events"),
            "primary_key": inspector.get_pk_constraint("usage_events"),
        }
    finally:
        engine.dispose()


def _type_family(type_: Any) -> str:
    """What the statements rely on: text of a length, whole numbers, floats."""
    python = type_.python_type
    if python is str:
        return f"str({getattr(type_, 'length', None)})"
    return python.__name__


def test_the_model_has_the_migrated_columns_types_and_nullability(database_url: str) -> None:
    migrated = {column["name"]: column for column in _migrated(database_url)["columns"]}
    assert list(migrated) == [column.name for column in TABLE.columns]
    for column in TABLE.columns:
        found = migrated[column.name]
        assert found["nullable"] == column.nullable, column.name
        assert _type_family(found["type"]) == _type_family(column.type), column.name
        if not column.primary_key:  # the key's default is PostgreSQL's sequence
            assert (found["default"] is None) == (column.server_default is None), column.name


def test_the_indexes_the_statements_rely_on_exist(database_url: str) -> None:
    migrated = _migrated(database_url)
    assert migrated["primary_key"]["constrained_columns"] == ["id"]
    unique = [set(c["column_names"]) for c in migrated["unique"]]
    unique += [set(i["column_names"]) for i in migrated["indexes"] if i["unique"]]
    # ON CONFLICT (external_subscription_id, transaction_id): the model's unique key.
    (model_key,) = [set(c.columns.keys()) for c in TABLE.constraints if c.name and "uq" in c.name]
    assert model_key in unique
    leading = {i["column_names"][0] for i in migrated["indexes"]}
    assert "transaction_id" in leading  # GET /gateway/events/{transaction_id}
    by_name = {i["name"]: i for i in migrated["indexes"]}
    for index in TABLE.indexes:  # the partial due and dead indexes: claims and the dead list
        assert by_name[index.name]["column_names"] == [c.name for c in index.columns]


def test_the_row_types_name_only_columns_of_the_model() -> None:
    assert set(store.OutboxRow._fields) <= set(store.COLUMNS)
    assert set(store.Claimed._fields) <= set(store.COLUMNS)
    required = {c.name for c in TABLE.columns if not c.nullable and c.server_default is None}
    written = {*store.OutboxRow._fields, "status", "accepted_at", "next_attempt_at"}
    assert required - {"id"} <= written  # an insert fills every NOT NULL column
