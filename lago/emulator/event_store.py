"""The ``events`` table of Lago's Postgres store, as the create services write to it.

Unique index ``index_unique_transaction_id`` on ``(organization_id,
external_subscription_id, transaction_id)`` (``app/models/event.rb``); NULLs are distinct in
a Postgres unique index, so an event without a subscription never clashes. Such events are
kept under ``(None, lago_id)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .state import EmulatorState

Record = dict[str, Any]


def _key(event: Record) -> tuple[str | None, str]:
    return event["external_subscription_id"], event["transaction_id"]


def _store(state: EmulatorState, event: Record) -> None:
    subscription_id = event["external_subscription_id"]
    key = _key(event) if subscription_id is not None else (None, event["lago_id"])
    state.events[key] = event
    state.events_by_transaction.setdefault(event["transaction_id"], event)


def insert_one(state: EmulatorState, event: Record, lago_id: str) -> bool:
    """``event.save!``: ``False`` on ``RecordNotUnique``, the stored copy untouched."""
    if event["external_subscription_id"] is not None and _key(event) in state.events:
        return False
    event["lago_id"] = lago_id
    _store(state, event)
    return True


def insert_all(state: EmulatorState, events: list[Record]) -> list[Record]:
    """``INSERT ... ON CONFLICT (index_unique_transaction_id) DO NOTHING RETURNING``: the
    rows inserted, in payload order; a row clashing with a stored one or an earlier one of
    the same statement is skipped."""
    inserted: list[Record] = []
    taken: set[tuple[str | None, str]] = set()
    for event in events:
        if event["external_subscription_id"] is not None:
            key = _key(event)
            if key in state.events or key in taken:
                continue
            taken.add(key)
        inserted.append(event)
    return inserted


def bulk_insert(state: EmulatorState, events: list[Record], new_id: Callable[[], str]) -> list[int]:
    """``bulk_insert_events`` of ``app/services/events/create_batch_service.rb``: the indexes
    refused as ``value_already_exist``; nothing is kept unless the list is empty.

    Lago indexes the returned rows by ``transaction_id`` alone (a later row replaces an
    earlier one) and takes one out per event in payload order, so a ``transaction_id`` met
    twice in a payload always fails its second event, whichever subscriptions they name.
    """
    rows = insert_all(state, events)
    row_ids = {id(row): new_id() for row in rows}
    by_transaction = {row["transaction_id"]: row for row in rows}
    refused: list[int] = []
    for index, event in enumerate(events):
        row = by_transaction.pop(event["transaction_id"], None)
        if row is None:
            refused.append(index)
        else:
            event["lago_id"] = row_ids[id(row)]
    if refused:
        # raise ActiveRecord::Rollback: the inserted rows go away.
        for event in events:
            event["lago_id"] = None
        return refused
    for row in rows:
        _store(state, row)
    return refused
