"""Unauthenticated control endpoints under ``/_emulator`` for an emulator in its own process."""

from __future__ import annotations

import itertools

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso
from .errors import BadRequest, NotFound
from .http import ok, read_json, state_of
from .invoicing import serialize
from .period_close import close_period as close_period_now
from .recurring_rules import run_clock


async def health(request: Request) -> Response:
    """GET /health, as Lago answers it."""
    return ok(
        {
            "message": "Success",
            "version": "emulator",
            "github_url": "https://github.com/getlago/lago-api",
        }
    )


async def stats(request: Request) -> Response:
    """GET /_emulator/stats: stored events, duplicates, requests by status, faults."""
    state = state_of(request)
    return ok({**state.stats(), "faults": state.faults.snapshot()})


async def faults(request: Request) -> Response:
    """POST /_emulator/faults: set fault fields; ``outage_seconds`` (with ``outage_kind``
    and ``outage_status``) starts an outage."""
    state = state_of(request)
    settings = await read_json(request)
    if not isinstance(settings, dict):
        raise BadRequest("expected a JSON object of fault settings")
    if settings.pop("clear", False):
        state.faults.clear()
    try:
        state.faults.configure(settings)
    except (TypeError, ValueError) as exc:
        raise BadRequest(str(exc)) from exc
    return ok({"faults": state.faults.snapshot()})


async def reset(request: Request) -> Response:
    """POST /_emulator/reset: forget everything."""
    state_of(request).reset()
    return ok({"reset": True})


async def events(request: Request) -> Response:
    """GET /_emulator/events?limit=[&only=transaction_id]: stored events, oldest first (or
    only their transaction ids, compact enough for a million)."""
    state = state_of(request)
    try:
        limit = int(request.query_params.get("limit", 100))
    except ValueError as exc:
        raise BadRequest("limit must be an integer") from exc
    chosen = list(itertools.islice(state.events.values(), max(limit, 0)))
    if request.query_params.get("only") == "transaction_id":
        ids = [event["transaction_id"] for event in chosen]
        return ok({"transaction_ids": ids, "total": len(state.events)})
    return ok({"events": chosen, "total": len(state.events)})


async def recurring_rules_clock(request: Request) -> Response:
    """POST /_emulator/clock/recurring_transaction_rules: run the wallets' recurring-rule clock
    jobs once at the emulator's now (``recurring_rules.run_clock``)."""
    state = state_of(request)
    return ok({"now": iso(state.now()), **run_clock(state)})


async def close_period(request: Request) -> Response:
    """POST /_emulator/close_period ``{"external_customer_id": optional}``: the billing run
    of a period's end, now (``period_close.close_period``): ``{"now", "invoices"}``."""
    state = state_of(request)
    body = await read_json(request)
    customer = body.get("external_customer_id") if isinstance(body, dict) else None
    if customer is not None and not isinstance(customer, str):
        raise BadRequest("external_customer_id must be a string")
    if customer is not None and customer not in state.customers:
        raise NotFound("customer")
    invoices = [serialize(state, invoice) for invoice in close_period_now(state, customer)]
    return ok({"now": iso(state.now()), "invoices": invoices})
