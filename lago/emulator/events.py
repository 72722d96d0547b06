"""Usage events with the Postgres event store's rules.

Copied from ``app/controllers/api/v1/events_controller.rb``,
``app/services/events/create_service.rb``, ``app/services/events/create_batch_service.rb``
and ``app/models/event.rb``: unique on ``(external_subscription_id, transaction_id)``, where
a null subscription never clashes (Postgres' unique indexes treat NULLs as distinct); a
batch is all-or-nothing. Unknown subscriptions and metric codes are accepted, as Lago
resolves them in a later job. This is the hot path of the gateway's benchmark: plain dicts,
no per-event models.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, parse_iso
from .errors import NotFound, ValidationFailed
from .event_params import (
    InternalError,
    InvalidTimestamp,
    is_blank,
    iso_ms,
    precise_amount,
    text,
    timestamp_ms,
)
from .event_store import Record, bulk_insert, insert_one
from .http import ok, paginate, read_json, require_root, state_of
from .state import EmulatorState

MAX_LENGTH = int(os.environ.get("LAGO_EVENTS_BATCH_MAX_LENGTH", "100"))
_MANDATORY = ["value_is_mandatory"]
_DUPLICATE = {"transaction_id": ["value_already_exist"]}
_INVALID_TIMESTAMP = {"timestamp": ["invalid_format"]}

_counter = itertools.count(1)


def _lago_id() -> str:
    # uuid4 costs a syscall per event; a process-unique UUID-shaped counter is enough here.
    return f"00000000-0000-4000-8000-{next(_counter):012x}"


def build_event(raw: dict[str, Any], received_ms: int, created_at: str) -> Record | dict[str, Any]:
    """The event ``Event.new`` builds from permitted params, or the errors that refuse it.

    The timestamp is cast after the other fields and raises, so a bad one is the only error
    reported for its event (``create_batch_service.rb#validate_events``).
    """
    try:
        millis = timestamp_ms(raw.get("timestamp"), received_ms)
    except InvalidTimestamp:
        return _INVALID_TIMESTAMP
    transaction_id, code = text(raw.get("transaction_id")), text(raw.get("code"))
    if transaction_id is None or is_blank(transaction_id) or code is None or is_blank(code):
        return _record_errors(transaction_id, code)
    properties = raw.get("properties")
    return {
        "lago_id": None,
        "transaction_id": transaction_id,
        "lago_customer_id": None,
        "code": code,
        "timestamp": iso_ms(millis),
        "precise_total_amount_cents": precise_amount(raw.get("precise_total_amount_cents")),
        "properties": properties if isinstance(properties, dict) else {},
        "lago_subscription_id": None,
        "external_subscription_id": text(raw.get("external_subscription_id")),
        "created_at": created_at,
    }


def _record_errors(transaction_id: str | None, code: str | None) -> dict[str, Any]:
    """``event.errors.messages``: the presence validations of ``app/models/event.rb``."""
    errors: dict[str, Any] = {}
    if transaction_id is None or is_blank(transaction_id):
        errors["transaction_id"] = _MANDATORY
    if code is None or is_blank(code):
        errors["code"] = _MANDATORY
    return errors


def _is_event(built: dict[str, Any]) -> bool:
    return "lago_id" in built


def _now(state: EmulatorState) -> tuple[int, str]:
    return time.time_ns() // 1_000_000, iso(state.now())


async def create(request: Request) -> Response:
    """POST /events: one event; a duplicate is 422 ``value_already_exist``, the first stays."""
    state = state_of(request)
    state.event_requests += 1
    raw = require_root(await read_json(request), "event")
    event = build_event(raw, *_now(state))
    if not _is_event(event):
        raise ValidationFailed(event)
    if not insert_one(state, event, _lago_id()):
        state.duplicate_rejections += 1
        raise ValidationFailed(_DUPLICATE)
    return ok({"event": event})


def _validate_events(
    items: list[dict[str, Any]], state: EmulatorState
) -> tuple[list[Record], dict[str, Any]]:
    """``validate_events``: every event built, errors keyed by index."""
    received_ms, created_at = _now(state)
    events: list[Record] = []
    errors: dict[str, Any] = {}
    for index, raw in enumerate(items):
        built = build_event(raw, received_ms, created_at)
        if _is_event(built):
            events.append(built)
        else:
            errors[str(index)] = built
    return events, errors


async def create_batch(request: Request) -> Response:
    """POST /events/batch: up to 100 events, all stored or none."""
    state = state_of(request)
    state.event_requests += 1
    items = batch_items(await read_json(request))
    if not items:
        raise ValidationFailed({"events": ["no_events"]})
    if len(items) > MAX_LENGTH:
        raise ValidationFailed({"events": ["too_many_events"]})
    events, errors = _validate_events(items, state)
    if errors:
        raise ValidationFailed(errors)
    duplicates = bulk_insert(state, events, _lago_id)
    if duplicates:
        state.duplicate_rejections += len(duplicates)
        raise ValidationFailed({str(index): _DUPLICATE for index in duplicates})
    return ok({"events": events})


def batch_items(body: Any) -> list[dict[str, Any]]:
    """``params.permit(events: [...])``: the objects of the ``events`` array, others dropped."""
    items = body.get("events") if isinstance(body, dict) else None
    if isinstance(items, dict) and items:
        # Rails keeps a non-empty object here, then the service indexes a pair: a 500.
        raise InternalError
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]


def _with_links(state: EmulatorState, event: Record) -> Record:
    """As Lago shows an event once post-processing attached its subscription and customer."""
    subscription_id = event["external_subscription_id"]
    subscription = state.subscription(subscription_id) if subscription_id else None
    if subscription is None:
        return event
    return {
        **event,
        "lago_subscription_id": subscription["lago_id"],
        "lago_customer_id": subscription["lago_customer_id"],
    }


async def show(request: Request) -> Response:
    """GET /events/{transaction_id}: the first event with that id, on any subscription."""
    state = state_of(request)
    event = state.events_by_transaction.get(request.path_params["transaction_id"])
    if event is None:
        raise NotFound("event")
    return ok({"event": _with_links(state, event)})


def _time_filter(request: Request, name: str) -> str | None:
    """``parse_datetime_filter`` (``app/queries/base_query.rb``): ISO 8601 or 422."""
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        moment = parse_iso(value)
    except ValueError:
        raise ValidationFailed({name: ["invalid_date"]}) from None
    return iso_ms(int(moment.timestamp() * 1000))


async def index(request: Request) -> Response:
    """GET /events (``app/queries/events_query.rb``): newest timestamp first, then
    ``transaction_id``; filters ``code``, ``external_subscription_id``, ``timestamp_from``,
    ``timestamp_to``."""
    state = state_of(request)
    query = request.query_params
    subscription_id, code = query.get("external_subscription_id"), query.get("code")
    since, until = _time_filter(request, "timestamp_from"), _time_filter(request, "timestamp_to")
    found = [
        event
        for event in state.events.values()
        if (subscription_id is None or event["external_subscription_id"] == subscription_id)
        and (code is None or event["code"] == code)
        and (since is None or event["timestamp"] >= since)
        and (until is None or event["timestamp"] <= until)
    ]
    found.sort(key=lambda event: event["transaction_id"])
    found.sort(key=lambda event: event["timestamp"], reverse=True)
    return paginate(request, "events", [_with_links(state, event) for event in found])
