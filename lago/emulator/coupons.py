"""Coupons, keyed by code (lago-api ``app/models/coupon.rb``,
``app/services/coupons/create_service.rb``, ``update_service.rb`` and ``validate_service.rb``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id, parse_iso
from .currencies import ACCEPTED_CURRENCIES
from .errors import MethodNotAllowed, NotFound, ValidationFailed
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


# Editable once the coupon was applied (Coupons::UpdateService#call).
_WHILE_APPLIED = ("name", "description", "expiration", "expiration_at")


def _apply(coupon: Record, params: dict[str, Any], names: tuple[str, ...] = _FIELDS) -> None:
    for name in names:
        if name in params:
            coupon[name] = params[name]
    if names is _WHILE_APPLIED:
        return
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


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_expiration_at(state: EmulatorState, params: dict[str, Any]) -> None:
    """``Validators::ExpirationDateValidator``: blank, or a date in the future; checked alone,
    before anything else."""
    value = params.get("expiration_at")
    if _blank(value):
        return
    try:
        future = isinstance(value, str) and parse_iso(value) > state.now()
    except ValueError:
        future = False
    if not future:
        raise ValidationFailed({"expiration_at": ["invalid_date"]})


def _check_targets(state: EmulatorState, params: dict[str, Any]) -> None:
    """Coupons::CreateService: unknown ``applies_to`` codes are 404, both kinds 405."""
    applies_to = params.get("applies_to") or {}
    plans = set(applies_to.get("plan_codes") or []) - {None}
    metrics = set(applies_to.get("billable_metric_codes") or []) - {None}
    if plans - set(state.plans):
        raise NotFound("plans")
    if metrics - set(state.billable_metrics):
        raise NotFound("billable_metrics")
    if plans and metrics:
        raise MethodNotAllowed("only_one_limitation_type_per_coupon_allowed")


def _amount_errors(coupon: Record) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    fixed = coupon.get("coupon_type") == "fixed_amount"
    amount = coupon.get("amount_cents")
    if fixed and amount is None:
        errors["amount_cents"] = ["value_is_mandatory"]
    elif amount is not None and not (isinstance(amount, int | float) and amount > 0):
        errors["amount_cents"] = ["value_is_invalid"]
    currency = coupon.get("amount_currency")
    if fixed and _blank(currency):
        errors["amount_currency"] = ["value_is_mandatory"]
    elif currency is not None and currency not in ACCEPTED_CURRENCIES:
        errors["amount_currency"] = ["value_is_invalid"]
    if coupon.get("coupon_type") == "percentage" and _blank(coupon.get("percentage_rate")):
        errors["percentage_rate"] = ["value_is_mandatory"]
    duration = coupon.get("frequency_duration")
    if coupon.get("frequency") == "recurring":
        if duration is None:
            errors["frequency_duration"] = ["value_is_mandatory"]
        elif not (isinstance(duration, int) and duration > 0):
            errors["frequency_duration"] = ["value_is_invalid"]
    return errors


def _validate(state: EmulatorState, coupon: Record) -> None:
    """``Coupon``'s validations in their order (the enums first), every failing one
    reported."""
    errors: dict[str, list[str]] = {}
    for name in ("expiration", "coupon_type", "frequency"):
        if coupon.get(name) not in _ENUMS[name]:
            errors[name] = ["value_is_invalid"]
    for name in ("name", "code"):
        if _blank(coupon.get(name)):
            errors[name] = ["value_is_mandatory"]
    taken = state.coupons.get(str(coupon.get("code")))
    if "code" not in errors and taken is not None and taken["lago_id"] != coupon["lago_id"]:
        errors["code"] = ["value_already_exist"]
    errors.update(_amount_errors(coupon))
    if coupon.get("reusable") is None:
        errors["reusable"] = ["value_is_invalid"]
    if errors:
        raise ValidationFailed(errors)


def create_coupon(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Create a coupon: 422 ``invalid_date``, then 404/405 on ``applies_to``, then 422 with
    every failed validation."""
    _check_expiration_at(state, params)
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
    _check_targets(state, params)
    _validate(state, coupon)
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
    params = await read_root(request, "coupon")
    _check_expiration_at(state, params)
    applied = any(a["lago_coupon_id"] == coupon["lago_id"] for a in state.applied_coupons.values())
    changed = dict(coupon)
    _apply(changed, params, _WHILE_APPLIED if applied else _FIELDS)
    if not applied:
        _check_targets(state, params)
    _validate(state, changed)
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
