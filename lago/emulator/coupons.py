"""Coupons, keyed by code."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id, parse_iso
from .errors import NotFound, ValidationFailed, invalid, missing
from .http import ok, paginate, read_root, state_of
from .state import EmulatorState, Record

_ENUMS = {
    "coupon_type": ("fixed_amount", "percentage"),
    "frequency": ("once", "recurring", "forever"),
    "expiration": ("no_expiration", "time_limit"),
}
_FIELDS = (
    "name",
    "code",
    "description",
    "coupon_type",
    "amount_cents",
    "amount_currency",
    "percentage_rate",
    "frequency",
    "frequency_duration",
    "reusable",
    "expiration",
    "expiration_at",
)


def _apply(coupon: Record, params: dict[str, Any]) -> None:
    for name in _FIELDS:
        if name in params and (params[name] is not None or name == "expiration_at"):
            coupon[name] = params[name]
    if coupon.get("percentage_rate") is not None:
        coupon["percentage_rate"] = str(coupon["percentage_rate"])
    applies_to = params.get("applies_to") or {}
    for key, flag in (
        ("plan_codes", "limited_plans"),
        ("billable_metric_codes", "limited_billable_metrics"),
    ):
        if key in applies_to:
            coupon[key] = list(applies_to[key] or [])
            coupon[flag] = bool(coupon[key])


def _validate(coupon: Record) -> None:
    for name in ("name", "code", "coupon_type", "frequency", "expiration"):
        if not coupon.get(name):
            raise missing(name)
    for name, allowed in _ENUMS.items():
        if coupon[name] not in allowed:
            raise invalid(name)
    if coupon["coupon_type"] == "fixed_amount" and coupon.get("amount_cents") is None:
        raise missing("amount_cents")
    if coupon["coupon_type"] == "percentage" and coupon.get("percentage_rate") is None:
        raise missing("percentage_rate")
    if coupon["expiration"] == "time_limit" and not coupon.get("expiration_at"):
        raise missing("expiration_at")


def create_coupon(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Create a coupon; 422 on a taken code or missing field."""
    coupon: Record = {
        "lago_id": new_id(),
        "description": None,
        "amount_cents": None,
        "amount_currency": None,
        "percentage_rate": None,
        "frequency_duration": None,
        "reusable": True,
        "limited_plans": False,
        "plan_codes": [],
        "limited_billable_metrics": False,
        "billable_metric_codes": [],
        "expiration_at": None,
        "created_at": iso(state.now()),
        "terminated_at": None,
    }
    _apply(coupon, params)
    _validate(coupon)
    if coupon["code"] in state.coupons:
        raise ValidationFailed({"code": ["value_already_exist"]})
    state.coupons[coupon["code"]] = coupon
    return coupon


def terminate_expired(state: EmulatorState) -> list[str]:
    """Lago's hourly ``Clock::TerminateCouponsJob`` (``Coupons::TerminateService
    .terminate_all_expired``): time-limited coupons past ``expiration_at`` are terminated.
    Returns their codes."""
    now = state.now()
    ended = []
    for coupon in state.coupons.values():
        expires = coupon.get("expiration_at")
        limited = coupon["expiration"] == "time_limit" and not coupon.get("terminated_at")
        if limited and expires and parse_iso(expires) <= now:
            coupon["terminated_at"] = iso(now)
            ended.append(coupon["code"])
    return ended


def get_coupon(state: EmulatorState, code: str) -> Record:
    """The coupon, or 404 ``coupon_not_found``."""
    coupon = state.coupons.get(code)
    if coupon is None:
        raise NotFound("coupon")
    return coupon


async def create(request: Request) -> Response:
    """POST /coupons."""
    params = await read_root(request, "coupon")
    return ok({"coupon": create_coupon(state_of(request), params)})


async def index(request: Request) -> Response:
    """GET /coupons."""
    return paginate(request, "coupons", list(state_of(request).coupons.values()))


async def show(request: Request) -> Response:
    """GET /coupons/{code}."""
    return ok({"coupon": get_coupon(state_of(request), request.path_params["code"])})


async def update(request: Request) -> Response:
    """PUT /coupons/{code}."""
    state = state_of(request)
    coupon = get_coupon(state, request.path_params["code"])
    changed = dict(coupon)
    _apply(changed, await read_root(request, "coupon"))
    _validate(changed)
    if changed["code"] != coupon["code"] and changed["code"] in state.coupons:
        raise ValidationFailed({"code": ["value_already_exist"]})
    del state.coupons[coupon["code"]]
    coupon.update(changed)
    state.coupons[coupon["code"]] = coupon
    return ok({"coupon": coupon})


async def destroy(request: Request) -> Response:
    """DELETE /coupons/{code}: the coupon goes, its applied coupons are terminated."""
    state = state_of(request)
    coupon = state.coupons.pop(get_coupon(state, request.path_params["code"])["code"])
    now = iso(state.now())
    coupon["terminated_at"] = now
    for applied in state.applied_coupons.values():
        if applied["lago_coupon_id"] == coupon["lago_id"] and applied["status"] == "active":
            applied.update(status="terminated", terminated_at=now)
    return ok({"coupon": coupon})
