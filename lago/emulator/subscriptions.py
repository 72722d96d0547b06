"""Subscriptions with Lago's plan-change rules (upgrade now, downgrade at period end).

Lago's app/controllers/api/v1/subscriptions_controller.rb with app/services/subscriptions/
create_service.rb, update_service.rb, terminate_service.rb and validate_service.rb.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import billing_period, iso, new_id, next_period_date, parse_iso
from .customers import ensure_customer
from .errors import NotFound, ValidationFailed, invalid
from .http import ok, paginate, query_list, read_json, read_root, state_of
from .outbox import emit
from .plans import get_plan, yearly_amount_cents
from .state import EmulatorState, Record

_ON_TERMINATION = {
    "on_termination_credit_note": ("credit", "skip", "refund", "offset"),
    "on_termination_invoice": ("generate", "skip"),
}


def _moment(value: Any) -> datetime | None:
    """Lago's ``Utils::Datetime.parse_iso8601``: None when ``value`` is not an ISO 8601 string."""
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


def _date_errors(state: EmulatorState, params: dict[str, Any], starts: Any) -> dict[str, Any]:
    """Subscriptions::ValidateService: ``subscription_at`` and ``ending_at`` are ISO 8601, and
    ``ending_at`` falls after today and after the start; termination options are known."""
    errors: dict[str, list[str]] = {}
    start = starts if isinstance(starts, datetime) else _moment(starts)
    if start is None:
        errors["subscription_at"] = ["invalid_date"]
    if params.get("ending_at"):
        end = _moment(params["ending_at"])
        today = state.now().date()
        if end is None or start is None or end.date() <= max(today, start.date()):
            errors["ending_at"] = ["invalid_date"]
    for name, allowed in _ON_TERMINATION.items():
        if params.get(name) and params[name] not in allowed:
            errors[name] = ["invalid_value"]
    return errors


def _text(value: Any) -> str:
    """Lago's ``.to_s.strip``: integers become strings."""
    return "" if value is None else str(value).strip()


def _record(state: EmulatorState, params: dict[str, Any], plan: Record, customer: Record) -> Record:
    now = state.now()
    starts = parse_iso(params["subscription_at"]) if params.get("subscription_at") else now
    active = starts <= now
    return {
        "lago_id": new_id(),
        "external_id": _text(params["external_id"]),
        "lago_customer_id": customer["lago_id"],
        "external_customer_id": customer["external_id"],
        "billing_entity_code": customer["billing_entity_code"],
        "billing_time": params.get("billing_time") or "calendar",
        "name": _text(params["name"]) if params.get("name") is not None else None,
        "plan_code": plan["code"],
        "plan_amount_cents": plan["amount_cents"],
        "plan_amount_currency": plan["amount_currency"],
        "status": "active" if active else "pending",
        "created_at": iso(now),
        "canceled_at": None,
        # Subscriptions::CreateService#started_at_for: a subscription_at already past starts it
        "started_at": iso(starts) if active else None,
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
    start, end = billing_period(plan["interval"], subscription["billing_time"], anchor, state.now())
    # Subscriptions::DatesService#charges_from_datetime: a period that began before the
    # subscription started begins when it started (the instant, not its midnight).
    started = subscription.get("started_at")
    if started:
        start = max(start, parse_iso(started))
    # A period closed early (period_close.py): the next one's charges start right after it.
    for row in state.invoice_subscriptions.values():
        if row["lago_subscription_id"] == subscription["lago_id"]:
            start = max(start, parse_iso(row["charges_to_datetime"]) + timedelta(microseconds=1))
    return start, end


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
    """Lago's Subscriptions::TerminateService: a pending subscription is canceled (its
    current one forgets the scheduled downgrade, ``subscription.updated``), an active one
    terminated; both answer ``subscription.terminated``."""
    now = iso(state.now())
    if subscription["status"] == "pending":
        subscription.update(status="canceled", canceled_at=now)
        previous = state.subscription(subscription["external_id"], "active")
        if previous is not None and previous["next_plan_code"] is not None:
            previous.update(next_plan_code=None, downgrade_plan_date=None)
            _announce(state, "subscription.updated", previous)
        _announce(state, "subscription.terminated", subscription)
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


def _check_new(state: EmulatorState, params: dict[str, Any]) -> Record:
    """CreateService's checks in its order: the plan (404), dates and options (422), then
    ``external_customer_id``, ``billing_time`` and ``external_id``."""
    plan = get_plan(state, _text(params.get("plan_code")))
    errors = _date_errors(state, params, params.get("subscription_at") or state.now())
    if errors:
        raise ValidationFailed(errors)
    if not _text(params.get("external_customer_id")):
        raise ValidationFailed({"external_customer_id": ["value_is_mandatory"]})
    if params.get("billing_time") not in (None, "calendar", "anniversary"):
        raise invalid("billing_time")
    if not _text(params.get("external_id")):
        raise ValidationFailed({"external_id": ["value_is_mandatory"]})
    return plan


def create_subscription(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Create, return unchanged (same plan), upgrade now or schedule a downgrade."""
    plan = _check_new(state, params)
    external_id = _text(params["external_id"])
    customer_id = _text(params["external_customer_id"])
    current = state.subscription(external_id) or state.subscription(external_id, "pending")
    if current is not None and current["external_customer_id"] != customer_id:
        raise ValidationFailed({"external_id": ["value_already_exist"]})
    new = _record(state, params, plan, ensure_customer(state, customer_id))
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


def listed(state: EmulatorState, request: Request, customer_id: str | None) -> Response:
    """SubscriptionIndex#subscription_index: ``external_id``, ``plan_code``, ``currency``,
    ``status[]`` (default active) and the customer, as SubscriptionsQuery filters."""
    statuses = set(query_list(request, "status") or ["active"])
    query = request.query_params
    fields = ("external_id", "plan_code")
    found = [
        serialize(state, record)
        for record in state.subscriptions.values()
        if record["status"] in statuses
        and customer_id in (None, record["external_customer_id"])
        and all(query.get(name, record[name]) == record[name] for name in fields)
        and query.get("currency", record["plan_amount_currency"]) == record["plan_amount_currency"]
    ]
    return paginate(request, "subscriptions", found)


async def index(request: Request) -> Response:
    """GET /subscriptions?external_customer_id=."""
    customer_id = request.query_params.get("external_customer_id")
    return listed(state_of(request), request, customer_id)


async def show(request: Request) -> Response:
    """GET /subscriptions/{external_id}?status=."""
    state = state_of(request)
    found = find(state, request.path_params["external_id"], request.query_params.get("status"))
    return ok({"subscription": serialize(state, found)})


def _to_update(state: EmulatorState, external_id: str, status: str | None) -> Record:
    """The controller's pick: the only record with this external id whatever its status,
    else the pending (``status=pending``) or the active one."""
    records = [r for r in state.subscriptions.values() if r["external_id"] == external_id]
    if len(records) == 1:
        return records[0]
    return find(state, external_id, "pending" if status == "pending" else "active")


def update_subscription(state: EmulatorState, found: Record, params: dict[str, Any]) -> None:
    """Subscriptions::UpdateService for the fields the emulator keeps: 422 ``invalid_date``
    / ``invalid_value`` before any change; ``subscription_at`` moves a future start only;
    ``on_termination_credit_note`` applies to pay-in-advance plans only."""
    starts = params["subscription_at"] if "subscription_at" in params else found["subscription_at"]
    errors = _date_errors(state, params, starts)
    if errors:
        raise ValidationFailed(errors)
    for name in ("name", "ending_at", "on_termination_invoice"):
        if name in params:
            found[name] = params[name]
    plan = state.plans.get(found["plan_code"]) or {}
    if "on_termination_credit_note" in params and plan.get("pay_in_advance"):
        found["on_termination_credit_note"] = params["on_termination_credit_note"]
    future = found["status"] == "pending" and found["previous_plan_code"] is None
    if params.get("subscription_at") and future:
        starts = parse_iso(params["subscription_at"])
        found["subscription_at"] = iso(starts)
        if starts > state.now():
            return
        # UpdateService#process_subscription_at_change: a start moved to now or earlier
        # activates the subscription (subscription.started, then subscription.updated).
        found.update(status="active", started_at=iso(starts))
        _announce(state, "subscription.started", found)
        future = False
    if not future:
        _announce(state, "subscription.updated", found)


async def update(request: Request) -> Response:
    """PUT /subscriptions/{external_id}."""
    state = state_of(request)
    body = await read_json(request)
    params = await read_root(request, "subscription")
    status = request.query_params.get("status") or (
        body.get("status") if isinstance(body, dict) else None
    )
    found = _to_update(state, request.path_params["external_id"], status)
    update_subscription(state, found, params)
    return ok({"subscription": serialize(state, found)})


async def destroy(request: Request) -> Response:
    """DELETE /subscriptions/{external_id}: terminate (or ``?status=pending``: cancel).

    Termination options are checked (422 ``invalid_value``) before anything ends; a
    pay-in-arrears plan ignores ``on_termination_credit_note``."""
    state = state_of(request)
    status = "pending" if request.query_params.get("status") == "pending" else "active"
    found = find(state, request.path_params["external_id"], status)
    options = {k: v for k, v in request.query_params.items() if k in _ON_TERMINATION and v}
    plan = state.plans.get(found["plan_code"]) or {}
    if not plan.get("pay_in_advance"):
        options.pop("on_termination_credit_note", None)
    errors = _date_errors(state, options, found["subscription_at"])
    if errors:
        raise ValidationFailed(errors)
    found.update(options)
    _end(state, found)
    return ok({"subscription": serialize(state, found)})
