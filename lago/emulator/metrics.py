"""Billable metrics, keyed by code (lago-api ``app/models/billable_metric.rb``,
``app/services/billable_metrics/create_service.rb`` and ``update_service.rb``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id
from .errors import NotFound, ValidationFailed
from .http import ok, paginate, read_root, state_of
from .state import EmulatorState, Record

AGGREGATIONS = {
    "count_agg",
    "sum_agg",
    "max_agg",
    "unique_count_agg",
    "weighted_sum_agg",
    "latest_agg",
}
_FIELDS = (
    "name",
    "code",
    "description",
    "aggregation_type",
    "field_name",
    "recurring",
    "expression",
    "rounding_function",
    "rounding_precision",
    "weighted_interval",
    "filters",
)


# Editable once a plan charges the metric (BillableMetrics::UpdateService#call).
_WHILE_ATTACHED = ("name", "description", "filters")
_NOT_RECURRING = ("count_agg", "max_agg", "latest_agg")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _errors(state: EmulatorState, metric: Record) -> dict[str, list[str]]:
    """``BillableMetric``'s validations, in their order, every failing one reported."""
    errors: dict[str, list[str]] = {}
    kind = metric["aggregation_type"]
    if metric.get("recurring") and kind in _NOT_RECURRING:
        errors["recurring"] = ["not_compatible_with_aggregation_type"]
    if _blank(metric.get("name")):
        errors["name"] = ["value_is_mandatory"]
    if kind != "count_agg" and _blank(metric.get("field_name")):
        errors["field_name"] = ["value_is_mandatory"]
    if kind not in AGGREGATIONS:
        errors["aggregation_type"] = ["value_is_invalid"]
    if _blank(metric.get("code")):
        errors["code"] = ["value_is_mandatory"]
    else:
        taken = state.billable_metrics.get(metric["code"])
        if taken is not None and taken["lago_id"] != metric["lago_id"]:
            errors["code"] = ["value_already_exist"]
    if kind == "weighted_sum_agg" and metric.get("weighted_interval") != "seconds":
        errors["weighted_interval"] = ["value_is_invalid"]
    if metric.get("rounding_function") not in (None, "round", "ceil", "floor"):
        errors["rounding_function"] = ["value_is_invalid"]
    return errors


def _validate(state: EmulatorState, metric: Record) -> None:
    if metric["aggregation_type"] not in AGGREGATIONS:
        # ``BillableMetric#aggregation_type=`` stores nil for an unknown type.
        metric["aggregation_type"] = None
    if metric["aggregation_type"] == "count_agg":
        metric["field_name"] = None  # reset_field_name_for_count_agg
    errors = _errors(state, metric)
    if errors:
        raise ValidationFailed(errors)


def _apply(metric: Record, params: dict[str, Any], names: tuple[str, ...] = _FIELDS) -> None:
    for name in names:
        if name in params:
            metric[name] = params[name]
    metric["filters"] = [
        {"key": item.get("key"), "values": list(item.get("values") or [])}
        for item in metric.get("filters") or []
    ]
    metric["recurring"] = bool(metric.get("recurring"))


def attached_to_plan(state: EmulatorState, metric: Record) -> bool:
    """``BillableMetric#attached_to_plan?``: a plan charges it."""
    return any(
        charge["lago_billable_metric_id"] == metric["lago_id"]
        for plan in state.plans.values()
        for charge in plan.get("charges") or []
    )


def _with_counters(metric: Record) -> Record:
    """The serializer's deprecated ``counters``, always 0, on create, update, delete, index."""
    return {**metric, "active_subscriptions_count": 0, "draft_invoices_count": 0, "plans_count": 0}


def create_metric(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Create a billable metric; 422 with every failed validation."""
    metric: Record = {
        "lago_id": new_id(),
        "name": None,
        "code": None,
        "description": None,
        "aggregation_type": None,
        "field_name": None,
        "recurring": False,
        "rounding_function": None,
        "rounding_precision": None,
        "weighted_interval": None,
        "filters": [],
        "created_at": iso(state.now()),
    }
    _apply(metric, params)
    _validate(state, metric)
    state.billable_metrics[metric["code"]] = metric
    return metric


def get_metric(state: EmulatorState, code: str) -> Record:
    """The metric, or 404 ``billable_metric_not_found``."""
    metric = state.billable_metrics.get(code)
    if metric is None:
        raise NotFound("billable_metric")
    return metric


def metric_by_id(state: EmulatorState, lago_id: str) -> Record | None:
    """The metric with this ``lago_id``."""
    return next((m for m in state.billable_metrics.values() if m["lago_id"] == lago_id), None)


async def create(request: Request) -> Response:
    """POST /billable_metrics."""
    params = await read_root(request, "billable_metric")
    return ok({"billable_metric": _with_counters(create_metric(state_of(request), params))})


async def index(request: Request) -> Response:
    """GET /billable_metrics, oldest first (Lago: newest first; lago/emulator/README.md)."""
    metrics = list(state_of(request).billable_metrics.values())
    return paginate(request, "billable_metrics", [_with_counters(m) for m in metrics])


async def show(request: Request) -> Response:
    """GET /billable_metrics/{code}."""
    return ok({"billable_metric": get_metric(state_of(request), request.path_params["code"])})


async def update(request: Request) -> Response:
    """PUT /billable_metrics/{code}."""
    state = state_of(request)
    metric = get_metric(state, request.path_params["code"])
    params = await read_root(request, "billable_metric")
    changed = dict(metric)
    _apply(changed, params, _WHILE_ATTACHED if attached_to_plan(state, metric) else _FIELDS)
    _validate(state, changed)
    del state.billable_metrics[metric["code"]]
    metric.update(changed)
    state.billable_metrics[metric["code"]] = metric
    return ok({"billable_metric": _with_counters(metric)})


async def destroy(request: Request) -> Response:
    """DELETE /billable_metrics/{code}."""
    state = state_of(request)
    metric = get_metric(state, request.path_params["code"])
    del state.billable_metrics[metric["code"]]
    return ok({"billable_metric": _with_counters(metric)})
