"""What the relay's statements share: the tables, and column lists taken from the models.

Messages and attempts are inserted whole (every column but the key the database assigns),
deliveries with ``DELIVERY_QUEUED_COLUMNS``, so no insert can leave a column out unseen.
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from gateway.relay.models import DELIVERY_QUEUED_COLUMNS, RelayAttempt, RelayMessage

MESSAGES: Table = RelayMessage.__table__  # type: ignore[attr-defined]
ATTEMPTS: Table = RelayAttempt.__table__  # type: ignore[attr-defined]
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
MESSAGE_COLUMNS = tuple(c.name for c in MESSAGES.columns if c.name != "seq")
ATTEMPT_COLUMNS = tuple(c.name for c in ATTEMPTS.columns if c.name != "id")


def pg_type(table: Table, name: str) -> str:
    """The column's PostgreSQL type for a cast; text stays text, so an over-long value fails
    as in a plain INSERT instead of being cut to the column's length."""
    type_ = table.c[name].type
    return "text" if type_.python_type is str else str(type_.compile(dialect=_PG))


def queued(values: dict[str, str]) -> tuple[str, str]:
    """``(columns, values)`` of a delivery insert, in ``DELIVERY_QUEUED_COLUMNS`` order."""
    return ", ".join(DELIVERY_QUEUED_COLUMNS), ", ".join(
        values[name] for name in DELIVERY_QUEUED_COLUMNS
    )


# A pending delivery of message ``:m`` to endpoint ``:e``, due ``:now``: enqueueing inserts
# it, a requeue upserts it.
QUEUED = queued(
    {
        "message_id": ":m",
        "endpoint_id": ":e",
        "status": ":pending",
        "attempts": "0",
        "next_attempt_at": ":now",
        "created_at": ":now",
    }
)
