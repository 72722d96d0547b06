"""Plans with their charges, keyed by code."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import PERIODS_PER_YEAR, iso, new_id
from .errors import NotFound, ValidationFailed, invalid, missing
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
_REQUIRED = ("name", "code", "interval", "amount_cents", "amount_currency")


def yearly_amount_cents(plan: Record) -> int:
    """What Lago compares to tell an upgrade from a downgrade."""
    return int(plan["amount_cents"]) * PERIODS_PER_YEAR[plan["interval"]]


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


def _apply(state: EmulatorState, plan: Record, params: dict[str, Any]) -> None:
    for name in _PLAN_FIELDS:
        if params.get(name) is not None:
            plan[name] = params[name]
    for name in _REQUIRED:
        if plan.get(name) in (None, ""):
            raise missing(name)
    if plan["interval"] not in PERIODS_PER_YEAR:
        raise invalid("interval")
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
    """Create a plan; 422 on a taken code, 404 on an unknown metric."""
    plan: Record = {
        "lago_id": new_id(),
        "created_at": iso(state.now()),
        "trial_period": 0.0,
        "pay_in_advance": False,
        "bill_charges_monthly": None,
        "charges": [],
        "taxes": [],
        "usage_thresholds": [],
    }
    _apply(state, plan, params)
    if plan["code"] in state.plans:
        raise ValidationFailed({"code": ["value_already_exist"]})
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
    _apply(state, changed, params)
    if changed["code"] != plan["code"] and changed["code"] in state.plans:
        raise ValidationFailed({"code": ["value_already_exist"]})
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
