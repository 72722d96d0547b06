"""What the ``usage_events`` statements share: the column list, taken from the ``UsageEvent``
table model (``models``), which a test checks against the migrated schema, and the row
types, which name only columns of that model: ``OutboxRow`` for a new event, ``Claimed`` for
one taken to forward."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Table, bindparam
from sqlalchemy.sql.elements import BindParameter

from gateway.usage.models import UsageEvent

TABLE: Table = UsageEvent.__table__  # type: ignore[attr-defined]
COLUMNS: tuple[str, ...] = tuple(column.name for column in TABLE.columns)

Key = tuple[str, str]  # (external_subscription_id, transaction_id): the unique key


class OutboxRow(NamedTuple):
    """One event ready to store: the exact payload Lago will receive, its fingerprint, and
    the key name that sent it. Field names are the columns they fill."""

    external_subscription_id: str
    transaction_id: str
    code: str
    payload: str
    fingerprint: str
    needs_check: int = 0
    accepted_by: str = ""

    @property
    def key(self) -> Key:
        return (self.external_subscription_id, self.transaction_id)


class Claimed(NamedTuple):
    """A claimed outbox row (a tuple: hundreds are built per claim); fields are columns."""

    id: int
    external_subscription_id: str
    transaction_id: str
    code: str
    payload: str
    attempts: int
    needs_check: int
    next_attempt_at: float = 0.0  # when claimed: with ``id``, the claim order's key

    @property
    def key(self) -> tuple[float, int]:
        return (self.next_attempt_at, self.id)


# ``id IN :ids``, one placeholder per id (SQLite; a replay on either database).
IDS: BindParameter[Any] = bindparam("ids", expanding=True)
