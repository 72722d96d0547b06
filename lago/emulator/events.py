"""Usage events with the Postgres event store's rules.

Unique on ``(external_subscription_id, transaction_id)``; a batch is all-or-nothing.
Unknown subscriptions and metric codes are accepted, as Lago validates them asynchronously.
This is the hot path of the gateway's benchmark: plain dicts, no per-event models.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, iso_ms
from .errors import BadRequest, NotFound, ValidationFailed
from .http import ok, paginate, read_json, state_of
from .state import EmulatorState, Record

MAX_BATCH = 100
_MISSING = ["value_is_missing"]
_DUPLICATE = {"transaction_id": ["value_already_exist"]}
# Year 1 to 9999: what Ruby's Time can represent and our formatter can print.
_MIN_TS, _MAX_TS = -62135596800.0, 253402300799.0


def parse_timestamp(value: object, received: float) -> float | None:
    """Unix seconds from an int, float or numeric string; ``None`` for anything else."""
    if value is None:
        return received
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or not _MIN_TS <= seconds <= _MAX_TS:
        return None
    return seconds


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def build_event(raw: object, received: float, created_at: str) -> tuple[Record, dict[str, Any]]:
    """The stored form of one input event, or the errors that refuse it."""
    if not isinstance(raw, dict):
        return {}, {"event": ["value_is_invalid"]}
    errors: dict[str, Any] = {}
    transaction_id = _text(raw.get("transaction_id"))
    code = _text(raw.get("code"))
    subscription_id = _text(raw.get("external_subscription_id"))
    if transaction_id is None:
        errors["transaction_id"] = _MISSING
    if code is None:
        errors["code"] = _MISSING
    if subscription_id is None:
        errors["external_subscription_id"] = _MISSING
    seconds = parse_timestamp(raw.get("timestamp"), received)
    if seconds is None:
        errors["timestamp"] = ["invalid_format"]
    if errors or seconds is None:
        return {}, errors
    properties = raw.get("properties")
    precise = raw.get("precise_total_amount_cents")
    return {
        "lago_id": None,
        "transaction_id": transaction_id,
        "lago_customer_id": None,
        "code": code,
        "timestamp": iso_ms(seconds),
        "precise_total_amount_cents": None if precise is None else str(precise),
        "properties": properties if isinstance(properties, dict) else {},
        "lago_subscription_id": None,
        "external_subscription_id": subscription_id,
        "created_at": created_at,
    }, errors


def _store(state: EmulatorState, events: list[Record]) -> None:
    by_transaction = state.events_by_transaction
    for event in events:
        event["lago_id"] = _lago_id()
        state.events[(event["external_subscription_id"], event["transaction_id"])] = event
        by_transaction.setdefault(event["transaction_id"], event)


_counter = itertools.count(1)


def _lago_id() -> str:
    # uuid4 costs a syscall per event; a process-unique UUID-shaped counter is enough here.
    return f"00000000-0000-4000-8000-{next(_counter):012x}"


def _key(event: Record) -> tuple[str, str]:
    return event["external_subscription_id"], event["transaction_id"]


async def create(request: Request) -> Response:
    """POST /events: one event; a duplicate is 422 and the first copy stays."""
    state = state_of(request)
    state.event_requests += 1
    body = await read_json(request)
    raw = body.get("event") if isinstance(body, dict) else None
    if not isinstance(raw, dict) or not raw:
        raise BadRequest("param is missing or the value is empty: event")
    event, errors = build_event(raw, time.time(), iso(state.now()))
    if errors:
        raise ValidationFailed(errors)
    if _key(event) in state.events:
        state.duplicate_rejections += 1
        raise ValidationFailed(_DUPLICATE)
    _store(state, [event])
    return ok({"event": event})


def _batch_errors(state: EmulatorState, items: list[Any]) -> tuple[list[Record], dict[str, Any]]:
    received, created_at = time.time(), iso(state.now())
    stored, seen = state.events, set()
    events: list[Record] = []
    errors: dict[str, Any] = {}
    for index, raw in enumerate(items):
        event, problems = build_event(raw, received, created_at)
        if not problems:
            key = _key(event)
            if key in stored or key in seen:
                problems = _DUPLICATE
            seen.add(key)
        if problems:
            errors[str(index)] = problems
        else:
            events.append(event)
    return events, errors


async def create_batch(request: Request) -> Response:
    """POST /events/batch: up to 100 events, all stored or none."""
    state = state_of(request)
    state.event_requests += 1
    body = await read_json(request)
    items = body.get("events") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise BadRequest("param is missing or the value is empty: events")
    if not items:
        raise ValidationFailed({"events": ["no_events"]})
    if len(items) > MAX_BATCH:
        raise ValidationFailed({"events": ["too_many_events"]})
    events, errors = _batch_errors(state, items)
    if errors:
        state.duplicate_rejections += sum(1 for e in errors.values() if e is _DUPLICATE)
        raise ValidationFailed(errors)
    _store(state, events)
    return ok({"events": events})


def _with_links(state: EmulatorState, event: Record) -> Record:
    """As Lago shows an event once post-processing attached its subscription and customer."""
    subscription = state.subscription(event["external_subscription_id"])
    if subscription is None:
        return event
    return {
        **event,
        "lago_subscription_id": subscription["lago_id"],
        "lago_customer_id": subscription["lago_customer_id"],
    }


async def show(request: Request) -> Response:
    """GET /events/{transaction_id}: the first event with that id."""
    state = state_of(request)
    event = state.events_by_transaction.get(request.path_params["transaction_id"])
    if event is None:
        raise NotFound("event")
    return ok({"event": _with_links(state, event)})


async def index(request: Request) -> Response:
    """GET /events: filters ``external_subscription_id`` and ``code``."""
    state = state_of(request)
    query = request.query_params
    subscription_id, code = query.get("external_subscription_id"), query.get("code")
    found = [
        _with_links(state, event)
        for event in state.events.values()
        if (subscription_id is None or event["external_subscription_id"] == subscription_id)
        and (code is None or event["code"] == code)
    ]
    return paginate(request, "events", found)
