"""``GET /api/v1/events/{transaction_id}``: Lago's event, or the gateway's copy while Lago
does not have it yet.

The gateway answers ``POST /api/v1/events`` once an event is in its outbox and forwards it
later, so an accepted event may not be in Lago yet. Lago is asked first and its answer wins.
When Lago answers 404 (or is down: unreachable, 429, 5xx) and the gateway holds the event pending or
forwarded, the answer is the event object ``POST /api/v1/events`` gave for it (Lago's
``EventSerializer`` shape: ``lago_customer_id`` and ``lago_subscription_id`` null, ``lago_id``
the gateway's stable id). An event Lago refused (dead) is Lago's 404: its reason is at
``GET /gateway/events/{transaction_id}``.
"""

from __future__ import annotations

from typing import Any

from gateway.billing.passthrough import segment
from gateway.db import Database
from gateway.errors import from_lago
from gateway.integrations.lago.client import LagoApiError, LagoClient, LagoError
from gateway.usage import store
from gateway.usage.models import DEAD
from gateway.usage.service import iso_seconds, lago_shape


async def find_event(database: Database, lago: LagoClient, transaction_id: str) -> dict[str, Any]:
    """``{"event": ...}`` as Lago answers it, else from the outbox; Lago's error otherwise."""
    try:
        return await lago.call("GET", f"/events/{segment(transaction_id)}")
    except LagoError as exc:
        if isinstance(exc, LagoApiError) and exc.status < 500 and exc.status not in (404, 429):
            raise from_lago(exc) from exc
        held = await held_event(database, transaction_id)
        if held is None:
            raise from_lago(exc) from exc
        return {"event": held}


async def held_event(database: Database, transaction_id: str) -> dict[str, Any] | None:
    """The first-accepted event with this id Lago did not refuse, in Lago's shape."""
    found = [
        event
        for event in await store.find_events(database, transaction_id, None)
        if event["status"] != DEAD
    ]
    if not found:
        return None
    first = min(found, key=lambda event: event["accepted_at"])
    return lago_shape(first["event"], iso_seconds(first["accepted_at"]))
