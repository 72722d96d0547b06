"""How claimed events are cut into Lago batch requests.

Never one transaction id twice in one request: Lago's batch endpoint matches the rows it
inserted to the payload by transaction id alone (``bulk_insert_events`` in lago-api's
``app/services/events/create_batch_service.rb``: ``index_by { |attrs| attrs[0] }``), so the
second event with an id, whatever its subscription, would be answered ``value_already_exist``
and the whole batch rolled back. With distinct ids in a request, ``value_already_exist`` at
an index can only mean that Lago holds that (subscription, transaction id).

A request also stays under ``max_bytes`` (a proxy's body limit in front of Lago answers 413);
an event larger than that on its own goes alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from gateway.usage.store import Claimed

_FRAME = len('{"events":[]}')


class _Open(NamedTuple):
    events: list[Claimed]
    ids: set[str]
    size: list[int]  # one cell: the body's bytes so far


def pack(claimed: Sequence[Claimed], count: int, max_bytes: int) -> list[list[Claimed]]:
    """Cut ``claimed`` (oldest first) into requests of at most ``count`` events and
    ``max_bytes`` bytes, each transaction id at most once in a request."""
    closed: list[list[Claimed]] = []
    open_: list[_Open] = []
    for event in claimed:
        cost = len(event.payload.encode()) + 1
        target = None
        for batch in open_:
            if event.transaction_id not in batch.ids and batch.size[0] + cost <= max_bytes:
                target = batch
                break
        if target is None:
            target = _Open([], set(), [_FRAME])
            open_.append(target)
        target.events.append(event)
        target.ids.add(event.transaction_id)
        target.size[0] += cost
        if len(target.events) >= count or target.size[0] >= max_bytes:
            open_.remove(target)
            closed.append(target.events)
    closed.extend(batch.events for batch in open_)
    return closed


def distinct_ids(batch: Sequence[Claimed]) -> bool:
    """Whether every transaction id of ``batch`` appears once (what ``pack`` guarantees)."""
    return len({event.transaction_id for event in batch}) == len(batch)
