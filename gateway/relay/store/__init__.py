"""The relay tables' repository: every statement on endpoints, messages, deliveries and
attempts, one module per phase. Statements are built once, at import.

    columns     the tables and the column lists taken from the models (shared)
    sending     Target, Claimed, Outcome; claim_due, targets_by_id, record_outcomes, release,
                pending_count
    health      mark_healthy, mark_failing, failing_longer_than, disable_endpoint
    enqueue     insert_messages_pg, ENQUEUE_PG, enqueue_params, insert_message,
                enabled_filters, insert_deliveries
    reads       (the API and the CLI) endpoints_oldest_first, cancel_deliveries, message_page,
                message_row, deliveries_of, attempts_of, lock_message, endpoint_enabled,
                requeue, requeue_failed
    retention   FIRST_SEQ, OLDEST, prune_range

Callers import the package (``from gateway.relay import store``) and find every name here.
"""

from __future__ import annotations

from gateway.relay.store.columns import ATTEMPT_COLUMNS, MESSAGE_COLUMNS
from gateway.relay.store.enqueue import (
    ENQUEUE_PG,
    enabled_filters,
    enqueue_params,
    insert_deliveries,
    insert_message,
    insert_messages_pg,
)
from gateway.relay.store.health import (
    disable_endpoint,
    failing_longer_than,
    mark_failing,
    mark_healthy,
)
from gateway.relay.store.reads import (
    attempts_of,
    cancel_deliveries,
    deliveries_of,
    endpoint_enabled,
    endpoints_oldest_first,
    lock_message,
    message_page,
    message_row,
    requeue,
    requeue_failed,
)
from gateway.relay.store.retention import FIRST_SEQ, OLDEST, prune_range
from gateway.relay.store.sending import (
    Claimed,
    Outcome,
    Target,
    claim_due,
    pending_count,
    record_outcomes,
    release,
    targets_by_id,
)

__all__ = [
    "ATTEMPT_COLUMNS",
    "ENQUEUE_PG",
    "FIRST_SEQ",
    "MESSAGE_COLUMNS",
    "OLDEST",
    "Claimed",
    "Outcome",
    "Target",
    "attempts_of",
    "cancel_deliveries",
    "claim_due",
    "deliveries_of",
    "disable_endpoint",
    "enabled_filters",
    "endpoint_enabled",
    "endpoints_oldest_first",
    "enqueue_params",
    "failing_longer_than",
    "insert_deliveries",
    "insert_message",
    "insert_messages_pg",
    "lock_message",
    "mark_failing",
    "mark_healthy",
    "message_page",
    "message_row",
    "pending_count",
    "prune_range",
    "record_outcomes",
    "release",
    "requeue",
    "requeue_failed",
    "targets_by_id",
]
