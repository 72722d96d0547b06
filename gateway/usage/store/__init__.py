"""The ``usage_events`` table's repository: every statement on it, one module per phase.

    rows        COLUMNS, Key, OutboxRow, Claimed: the column list and the row types, from
                the ``UsageEvent`` model (shared)
    acceptance  (the group-commit writer, ``outbox``) SQLITE_CHUNK, store_new_pg, insert_pg,
                insert_sqlite, existing, delete; direct_accept (a hold's capture)
    claims      (the forwarder) ClaimCursor, Claim, claim_connection, claim, mark_forwarded,
                mark_dead, reschedule
    reads       (the API and the CLI) describe, find_events, list_dead, replay_dead; the
                status counts, OutboxStatus and status
    retention   FIRST_ID, OLDEST_IN_RANGE, delete_forwarded

Callers import the package (``from gateway.usage import store``,
``from gateway.usage.store import OutboxRow``) and find every name here.
"""

from __future__ import annotations

from gateway.usage.store.acceptance import (
    SQLITE_CHUNK,
    delete,
    direct_accept,
    existing,
    insert_pg,
    insert_sqlite,
    store_new_pg,
)
from gateway.usage.store.claims import (
    Claim,
    ClaimCursor,
    claim,
    claim_connection,
    mark_dead,
    mark_forwarded,
    reschedule,
)
from gateway.usage.store.reads import (
    OutboxStatus,
    describe,
    find_events,
    list_dead,
    replay_dead,
    status,
)
from gateway.usage.store.retention import FIRST_ID, OLDEST_IN_RANGE, delete_forwarded
from gateway.usage.store.rows import COLUMNS, Claimed, Key, OutboxRow

__all__ = [
    "COLUMNS",
    "FIRST_ID",
    "OLDEST_IN_RANGE",
    "SQLITE_CHUNK",
    "Claim",
    "ClaimCursor",
    "Claimed",
    "Key",
    "OutboxRow",
    "OutboxStatus",
    "claim",
    "claim_connection",
    "delete",
    "delete_forwarded",
    "describe",
    "direct_accept",
    "existing",
    "find_events",
    "insert_pg",
    "insert_sqlite",
    "list_dead",
    "mark_dead",
    "mark_forwarded",
    "replay_dead",
    "reschedule",
    "status",
    "store_new_pg",
]
