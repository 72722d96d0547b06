"""Plans with their charges, keyed by code (lago-api ``app/models/plan.rb``,
``app/services/plans/create_service.rb``, ``update_service.rb`` and
``chargeables_validation_service.rb``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import PERIODS_PER_YEAR, iso, new_id
from .currencies import ACCEPTED_CURRENCIES
from .errors import NotFound, ValidationFailed, invalid
from .http import ok, paginate, read_root, state_of
from .metrics import metric_by_id
from .state import EmulatorState, Record

CHARGE_MODELS = {
    "dynamic",
    "graduated",
    "graduated_percentage",
    "package",
    "percentage",
    "standard",
    "volume",
}
_PLAN_FIELDS = (
    "name",
    "invoice_display_name",
    "code",
    "interval",
    "description",
    "amount_cents",
    "amount_currency",
    "trial_period",
    "pay_in_advance",
    "bill_charges_monthly",
)
# Editable once a subscription uses the plan (Plans::UpdateService#call).
_WHILE_SUBSCRIBED = ("name", "invoice_display_name", "description", "amount_cents")


def yearly_amount_cents(plan: Record) -> int:
    """What Lago compares to tell an upgrade from a downgrade."""
    return int(plan["amount_cents"]) * PERIODS_PER_YEAR[plan["interval"]]


def _check_metrics(state: EmulatorState, charges: Any) -> None:
    """``Plans::ChargeablesValidationService#validate_billable_metrics``, before any other
    check: 404 ``billable_metrics_not_found``."""
    ids = {c.get("billable_metric_id") for c in charges or [] if isinstance(c, dict)} - {None}
    if any(metric_by_id(state, str(lago_id)) is None for lago_id in ids):
        raise NotFound("billable_metrics")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _errors(state: EmulatorState, plan: Record) -> dict[str, list[str]]:
    """``Plan``'s validations, in their order, every failing one reported."""
    errors: dict[str, list[str]] = {}
    for name in ("name", "code"):
        if _blank(plan.get(name)):
            errors[name] = ["value_is_mandatory"]
    if plan.get("amount_currency") not in ACCEPTED_CURRENCIES:
        errors["amount_currency"] = ["value_is_invalid"]
    if plan.get("interval") not in PERIODS_PER_YEAR:
        errors["interval"] = ["value_is_invalid"]
    if plan.get("amount_cents") is None:
        errors["amount_cents"] = ["value_is_mandatory"]
    if not isinstance(plan.get("pay_in_advance"), bool):
        errors["pay_in_advance"] = ["value_is_invalid"]
    taken = state.plans.get(str(plan.get("code")))
    if taken is not None and taken["lago_id"] != plan["lago_id"]:
        errors.setdefault("code", []).append("value_already_exist")
    return errors


def _charge(state: EmulatorState, params: dict[str, Any], now: str) -> Record:
    metric = metric_by_id(state, str(params.get("billable_metric_id")))
    if metric is None:
        raise NotFound("billable_metric")
    if params.get("charge_model") not in CHARGE_MODELS:
        raise invalid("charge_model")
    return {
        "lago_id": params.get("id") or new_id(),
        "lago_billable_metric_id": metric["lago_id"],
        "billable_metric_code": metric["code"],
        "code": params.get("code") or metric["code"],
        "invoice_display_name": params.get("invoice_display_name"),
        "created_at": now,
        "charge_model": params["charge_model"],
        "pay_in_advance": bool(params.get("pay_in_advance")),
        "invoiceable": params.get("invoiceable") is not False,
        "regroup_paid_fees": None,
        "prorated": bool(params.get("prorated")),
        "min_amount_cents": int(params.get("min_amount_cents") or 0),
        "properties": params.get("properties") or {},
        "filters": params.get("filters") or [],
        "taxes": [],
    }


def _apply(
    state: EmulatorState,
    plan: Record,
    params: dict[str, Any],
    names: tuple[str, ...] = _PLAN_FIELDS,
) -> None:
    for name in names:
        if name in params:
            plan[name] = params[name]
    _check_metrics(state, params.get("charges"))
    errors = _errors(state, plan)
    if errors:
        raise ValidationFailed(errors)
    if params.get("charges") is not None:
        now = iso(state.now())
        plan["charges"] = [_charge(state, item, now) for item in params["charges"]]
    if params.get("usage_thresholds") is not None:
        plan["usage_thresholds"] = [
            _threshold(item, iso(state.now())) for item in params["usage_thresholds"]
        ]


def _threshold(params: dict[str, Any], now: str) -> Record:
    return {
        "lago_id": new_id(),
        "threshold_display_name": params.get("threshold_display_name"),
        "amount_cents": int(params.get("amount_cents") or 0),
        "recurring": bool(params.get("recurring")),
        "created_at": now,
        "updated_at": now,
    }


def create_plan(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Create a plan; 404 on an unknown metric, then 422 with every failed validation."""
    plan: Record = {
        "lago_id": new_id(),
        "created_at": iso(state.now()),
        "trial_period": 0.0,
        "pay_in_advance": None,
        "bill_charges_monthly": None,
        "charges": [],
        "taxes": [],
        "usage_thresholds": [],
    }
    _apply(state, plan, params)
    state.plans[plan["code"]] = plan
    return plan


def get_plan(state: EmulatorState, code: str) -> Record:
    """The plan, or 404 ``plan_not_found``."""
    plan = state.plans.get(code)
    if plan is None:
        raise NotFound("plan")
    return plan


async def create(request: Request) -> Response:
    """POST /plans."""
    params = await read_root(request, "plan")
    return ok({"plan": create_plan(state_of(request), params)})


async def index(request: Request) -> Response:
    """GET /plans."""
    return paginate(request, "plans", list(state_of(request).plans.values()))


async def show(request: Request) -> Response:
    """GET /plans/{code}."""
    return ok({"plan": get_plan(state_of(request), request.path_params["code"])})


async def update(request: Request) -> Response:
    """PUT /plans/{code}."""
    state = state_of(request)
    plan = get_plan(state, request.path_params["code"])
    params = await read_root(request, "plan")
    changed = dict(plan)
    subscribed = any(s["plan_code"] == plan["code"] for s in state.subscriptions.values())
    _apply(state, changed, params, _WHILE_SUBSCRIBED if subscribed else _PLAN_FIELDS)
    del state.plans[plan["code"]]
    plan.update(changed)
    state.plans[plan["code"]] = plan
    return ok({"plan": plan})


async def destroy(request: Request) -> Response:
    """DELETE /plans/{code}."""
    state = state_of(request)
    plan = get_plan(state, request.path_params["code"])
    del state.plans[plan["code"]]
    return ok({"plan": plan})
