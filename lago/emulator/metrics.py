"""Billable metrics, keyed by code."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id
from .errors import NotFound, ValidationFailed, invalid, missing
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


def _validate(metric: Record) -> None:
    for name in ("name", "code", "aggregation_type"):
        if not metric.get(name):
            raise missing(name)
    if metric["aggregation_type"] not in AGGREGATIONS:
        raise invalid("aggregation_type")
    if metric["aggregation_type"] != "count_agg" and not metric.get("field_name"):
        raise missing("field_name")


def _apply(metric: Record, params: dict[str, Any]) -> None:
    for name in _FIELDS:
        if name in params and params[name] is not None:
            metric[name] = params[name]
    metric["filters"] = [
        {"key": item.get("key"), "values": list(item.get("values") or [])}
        for item in metric.get("filters") or []
    ]


def create_metric(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Create a billable metric; 422 on a taken code or missing field."""
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
    _validate(metric)
    if metric["code"] in state.billable_metrics:
        raise ValidationFailed({"code": ["value_already_exist"]})
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
    return ok({"billable_metric": create_metric(state_of(request), params)})


async def index(request: Request) -> Response:
    """GET /billable_metrics."""
    metrics = list(state_of(request).billable_metrics.values())
    return paginate(request, "billable_metrics", metrics)


async def show(request: Request) -> Response:
    """GET /billable_metrics/{code}."""
    return ok({"billable_metric": get_metric(state_of(request), request.path_params["code"])})


async def update(request: Request) -> Response:
    """PUT /billable_metrics/{code}."""
    state = state_of(request)
    metric = get_metric(state, request.path_params["code"])
    params = await read_root(request, "billable_metric")
    changed = dict(metric)
    _apply(changed, params)
    _validate(changed)
    if changed["code"] != metric["code"] and changed["code"] in state.billable_metrics:
        raise ValidationFailed({"code": ["value_already_exist"]})
    del state.billable_metrics[metric["code"]]
    metric.update(changed)
    state.billable_metrics[metric["code"]] = metric
    return ok({"billable_metric": metric})


async def destroy(request: Request) -> Response:
    """DELETE /billable_metrics/{code}."""
    state = state_of(request)
    metric = get_metric(state, request.path_params["code"])
    del state.billable_metrics[metric["code"]]
    return ok({"billable_metric": metric})
