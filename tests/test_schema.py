"""Every table the models define is the table the migrations build, on SQLite and PostgreSQL.

The models (``gateway/*/models.py``) are what the code reads and writes through; the
migrations are what a database holds. Alembic's autogenerate comparison lists every
difference: a table or column one side lacks, a type, a nullability, a server default, an
index or a unique constraint.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine
from sqlmodel import SQLModel

import gateway
from gateway.db import sync_url
from gateway.relay.models import DELIVERY_ATTEMPTED_COLUMNS, DELIVERY_QUEUED_COLUMNS, RelayDelivery
from gateway.webhooks.models import HANDLING_COLUMNS, STORED_COLUMNS, InboundWebhook


def _all_models() -> MetaData:
    """``SQLModel.metadata`` once every capability's ``models`` module is imported."""
    for package in pkgutil.iter_modules(gateway.__path__):
        if package.ispkg and importlib.util.find_spec(f"gateway.{package.name}.models"):
            importlib.import_module(f"gateway.{package.name}.models")
    return SQLModel.metadata


# Tables whose model is known not to match its migrations yet, and why. Their differences are
# left out of the comparison; take a table out once its model is fixed.
EXPECTED_TO_DIFFER = {
    # The unique key is dialect-specific since 0008 (an index on PostgreSQL, the table's
    # constraint and the older transaction_id index on SQLite); the model has one shape.
    # tests/usage/test_schema.py checks it per dialect.
    "usage_events",
}


def _compared(thing: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    table = name if type_ == "table" else getattr(thing.table, "name", None)
    return table != "alembic_version" and table not in EXPECTED_TO_DIFFER


def _bare(default: str) -> str:
    default = default.strip()
    while default.startswith("(") and default.endswith(")"):
        default = default[1:-1].strip()
    if len(default) >= 2 and default[0] == default[-1] == "'":
        default = default[1:-1]
    return default


def _same_default(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """SQLite reflects ``DEFAULT ''`` as ``('')`` where the model says ``''``: the same
    default. None: Alembic decides."""
    if inspected_default is None or rendered_metadata_default is None:
        return None
    return False if _bare(inspected_default) == _bare(rendered_metadata_default) else None


def _shown(value: Any) -> str:
    clause = getattr(getattr(value, "arg", None), "text", None)  # a server default
    return repr(clause if clause is not None else getattr(value, "arg", value))


def _describe(difference: Any) -> str:
    if isinstance(difference, list):  # a column's changes: (op, schema, table, column, …)
        return "\n".join(_describe(part) for part in difference)
    op, *rest = difference
    if op.startswith("modify_"):
        _, table, column, _, old, new = rest
        return f"{op} {table}.{column}: migrations {_shown(old)}, model {_shown(new)}"
    if op.endswith("_column"):
        _, table, column = rest
        return f"{op} {table}.{column.name}"
    if op.endswith("_table"):
        return f"{op} {rest[0].name}"
    thing = rest[0]
    table = getattr(getattr(thing, "table", None), "name", "?")
    columns = [getattr(c, "name", str(c)) for c in getattr(thing, "columns", ())]
    return f"{op} {table}.{thing.name} {columns}"


def differences(database_url: str) -> list[str]:
    """Every difference between the models and the schema at ``database_url``, readable."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "compare_server_default": _same_default,
                    "include_object": _compared,
                },
            )
            found = compare_metadata(context, _all_models())
    finally:
        engine.dispose()
    return [_describe(difference) for difference in found]


def test_every_model_matches_the_migrated_schema(database_url: str) -> None:
    found = differences(database_url)
    assert found == [], "models and migrations differ:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("model", "parts"),
    [
        (InboundWebhook, (STORED_COLUMNS, HANDLING_COLUMNS)),
        (RelayDelivery, (DELIVERY_QUEUED_COLUMNS, DELIVERY_ATTEMPTED_COLUMNS)),
    ],
)
def test_column_tuples_name_every_column_but_the_key_once(
    model: Any, parts: tuple[tuple[str, ...], ...]
) -> None:
    """The tuples a store builds its inserts from: a new column must be placed in one."""
    table = model.__table__
    named = [name for part in parts for name in part]
    key = [column.name for column in table.primary_key.columns]
    assert sorted(named + key) == sorted(column.name for column in table.columns)
