"""Subscriptions with Lago's plan-change rules (upgrade now, downgrade at period end)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import billing_period, iso, new_id, next_period_date, parse_iso
from .customers import ensure_customer
from .errors import NotFound, ValidationFailed, invalid, missing
from .http import ok, paginate, query_list, read_json, read_root, state_of
from .outbox import emit
from .plans import get_plan, yearly_amount_cents
from .state import EmulatorState, Record


def _record(state: EmulatorState, params: dict[str, Any], plan: Record, customer: Record) -> Record:
    now = state.now()
    starts = parse_iso(params["subscription_at"]) if params.get("subscription_at") else now
    active = starts <= now
    return {
        "lago_id": new_id(),
        "external_id": str(params["external_id"]),
        "lago_customer_id": customer["lago_id"],
        "external_customer_id": customer["external_id"],
        "billing_entity_code": customer["billing_entity_code"],
        "billing_time": params.get("billing_time") or "calendar",
        "name": params.get("name"),
        "plan_code": plan["code"],
        "plan_amount_cents": plan["amount_cents"],
        "plan_amount_currency": plan["amount_currency"],
        "status": "active" if active else "pending",
        "created_at": iso(now),
        "canceled_at": None,
        "started_at": iso(now) if active else None,
        "ending_at": params.get("ending_at"),
        "subscription_at": iso(starts),
        "terminated_at": None,
        "previous_plan_code": None,
        "next_plan_code": None,
        "downgrade_plan_date": None,
        "trial_ended_at": None,
        "current_billing_period_started_at": None,
        "current_billing_period_ending_at": None,
        "on_termination_credit_note": None,
        "on_termination_invoice": "generate",
    }


def current_period(state: EmulatorState, subscription: Record) -> tuple[Any, Any] | None:
    """(start, end) of the active subscription's current billing period."""
    plan = state.plans.get(subscription["plan_code"])
    if subscription["status"] != "active" or plan is None:
        return None
    anchor = parse_iso(subscription["subscription_at"])
    return billing_period(plan["interval"], subscription["billing_time"], anchor, state.now())


def serialize(state: EmulatorState, subscription: Record) -> Record:
    """The response object: stored fields, the live billing period and the plan."""
    body = dict(subscription)
    period = current_period(state, subscription)
    if period is not None:
        body["current_billing_period_started_at"] = iso(period[0])
        body["current_billing_period_ending_at"] = iso(period[1])
    plan = state.plans.get(subscription["plan_code"])
    if plan is not None:
        body["plan"] = plan
    return body


def _announce(state: EmulatorState, webhook_type: str, subscription: Record) -> None:
    """Subscription webhooks carry the customer too."""
    body = serialize(state, subscription)
    body["customer"] = state.customers.get(subscription["external_customer_id"])
    emit(state, webhook_type, "subscription", body)


def _end(state: EmulatorState, subscription: Record) -> None:
    now = iso(state.now())
    if subscription["status"] == "pending":
        subscription.update(status="canceled", canceled_at=now)
        _announce(state, "subscription.canceled", subscription)
        return
    subscription.update(
        status="terminated", terminated_at=now, next_plan_code=None, downgrade_plan_date=None
    )
    pending = state.subscription(subscription["external_id"], "pending")
    if pending is not None:
        pending.update(status="canceled", canceled_at=now)
    _announce(state, "subscription.terminated", subscription)


def _start(state: EmulatorState, record: Record) -> Record:
    state.subscriptions[record["lago_id"]] = record
    if record["status"] == "active":
        _announce(state, "subscription.started", record)
    return record


def _upgrade(state: EmulatorState, current: Record, new: Record) -> Record:
    _end(state, current)
    new.update(
        previous_plan_code=current["plan_code"],
        billing_time=current["billing_time"],
        subscription_at=current["subscription_at"],
        name=new["name"] or current["name"],
    )
    return _start(state, new)


def _downgrade(state: EmulatorState, current: Record, new: Record) -> Record:
    pending = state.subscription(current["external_id"], "pending")
    if pending is None:
        new.update(
            status="pending",
            started_at=None,
            previous_plan_code=current["plan_code"],
            billing_time=current["billing_time"],
            subscription_at=current["subscription_at"],
        )
        state.subscriptions[new["lago_id"]] = new
        pending = new
    else:
        pending.update(plan_code=new["plan_code"], plan_amount_cents=new["plan_amount_cents"])
    period = current_period(state, current)
    downgrade_date = next_period_date(period[1]).isoformat() if period else None
    current.update(next_plan_code=pending["plan_code"], downgrade_plan_date=downgrade_date)
    _announce(state, "subscription.updated", current)
    return current


def create_subscription(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Create, return unchanged (same plan), upgrade now or schedule a downgrade."""
    if not params.get("external_customer_id"):
        raise NotFound("customer")
    if not params.get("external_id"):
        raise missing("external_id")
    if params.get("billing_time") not in (None, "calendar", "anniversary"):
        raise invalid("billing_time")
    plan = get_plan(state, str(params.get("plan_code")))
    current = state.subscription(str(params["external_id"])) or state.subscription(
        str(params["external_id"]), "pending"
    )
    if current is not None and current["external_customer_id"] != params["external_customer_id"]:
        raise ValidationFailed({"external_id": ["value_already_exist"]})
    new = _record(state, params, plan, ensure_customer(state, str(params["external_customer_id"])))
    if current is None:
        return _start(state, new)
    if current["plan_code"] == plan["code"]:
        return current
    if current["status"] == "pending":
        current.update(plan_code=plan["code"], plan_amount_cents=plan["amount_cents"])
        return current
    old_plan = state.plans.get(current["plan_code"])
    if old_plan is None or yearly_amount_cents(plan) >= yearly_amount_cents(old_plan):
        return _upgrade(state, current, new)
    return _downgrade(state, current, new)


def find(state: EmulatorState, external_id: str, status: str | None) -> Record:
    """The subscription in ``status`` (default active), or 404 ``subscription_not_found``."""
    found = state.subscription(external_id, status or "active")
    if found is None:
        raise NotFound("subscription")
    return found


async def create(request: Request) -> Response:
    """POST /subscriptions."""
    state = state_of(request)
    params = await read_root(request, "subscription")
    return ok({"subscription": serialize(state, create_subscription(state, params))})


async def index(request: Request) -> Response:
    """GET /subscriptions: filters ``external_customer_id``, ``plan_code``, ``status[]``."""
    state = state_of(request)
    statuses = set(query_list(request, "status") or ["active"])
    query = request.query_params
    found = [
        serialize(state, record)
        for record in state.subscriptions.values()
        if record["status"] in statuses
        and query.get("external_customer_id", record["external_customer_id"])
        == record["external_customer_id"]
        and query.get("plan_code", record["plan_code"]) == record["plan_code"]
    ]
    return paginate(request, "subscriptions", found)


async def show(request: Request) -> Response:
    """GET /subscriptions/{external_id}?status=."""
    state = state_of(request)
    found = find(state, request.path_params["external_id"], request.query_params.get("status"))
    return ok({"subscription": serialize(state, found)})


async def update(request: Request) -> Response:
    """PUT /subscriptions/{external_id}: name, ending_at, subscription_at (pending only)."""
    state = state_of(request)
    body = await read_json(request)
    params = await read_root(request, "subscription")
    status = request.query_params.get("status") or (
        body.get("status") if isinstance(body, dict) else None
    )
    found = find(state, request.path_params["external_id"], status)
    for name in ("name", "ending_at"):
        if name in params:
            found[name] = params[name]
    if params.get("subscription_at") and found["status"] == "pending":
        found["subscription_at"] = iso(parse_iso(params["subscription_at"]))
    _announce(state, "subscription.updated", found)
    return ok({"subscription": serialize(state, found)})


async def destroy(request: Request) -> Response:
    """DELETE /subscriptions/{external_id}: terminate (or ``?status=pending``: cancel)."""
    state = state_of(request)
    found = find(state, request.path_params["external_id"], request.query_params.get("status"))
    on_invoice = request.query_params.get("on_termination_invoice")
    if on_invoice in ("generate", "skip"):
        found["on_termination_invoice"] = on_invoice
    _end(state, found)
    return ok({"subscription": serialize(state, found)})
