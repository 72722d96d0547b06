"""Coupons applied to customers, and the discounts they give on invoices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id
from .coupons import get_coupon
from .customers import get_customer
from .errors import NotFound, ValidationFailed
from .http import ok, paginate, read_root, state_of
from .pricing import to_cents
from .state import EmulatorState, Record

_OVERRIDES = (
    "amount_cents",
    "amount_currency",
    "percentage_rate",
    "frequency",
    "frequency_duration",
)


def apply_coupon(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Apply a coupon: 404 for an unknown customer or a coupon that is not active, 422 if not
    reusable (``AppliedCoupons::CreateService#check_preconditions`` in lago-api). A coupon
    past its ``expiration_at`` stays active, and applicable, until Lago's hourly
    ``Clock::TerminateCouponsJob`` terminates it (``coupons.terminate_expired``)."""
    customer = get_customer(state, str(params.get("external_customer_id") or ""))
    coupon = get_coupon(state, str(params.get("coupon_code") or ""))
    if coupon.get("terminated_at"):
        raise NotFound("coupon")
    already = any(
        a["lago_coupon_id"] == coupon["lago_id"]
        and a["external_customer_id"] == customer["external_id"]
        for a in state.applied_coupons.values()
    )
    if already and not coupon["reusable"]:
        raise ValidationFailed({"coupon": ["coupon_is_not_reusable"]})
    terms = {key: coupon.get(key) for key in _OVERRIDES}
    terms.update({key: params[key] for key in _OVERRIDES if params.get(key) is not None})
    fixed = coupon["coupon_type"] == "fixed_amount"
    applied: Record = {
        "lago_id": new_id(),
        "lago_coupon_id": coupon["lago_id"],
        "coupon_code": coupon["code"],
        "coupon_name": coupon["name"],
        "lago_customer_id": customer["lago_id"],
        "external_customer_id": customer["external_id"],
        "status": "active",
        **terms,
        "amount_cents_remaining": terms["amount_cents"]
        if fixed and terms["frequency"] == "once"
        else None,
        "frequency_duration_remaining": terms["frequency_duration"]
        if terms["frequency"] == "recurring"
        else None,
        "expiration_at": coupon.get("expiration_at"),
        "created_at": iso(state.now()),
        "terminated_at": None,
        "coupon_type": coupon["coupon_type"],
        "credits": [],
    }
    state.applied_coupons[applied["lago_id"]] = applied
    return applied


def _one_discount(applied: Record, due: int, currency: str) -> int:
    if applied["coupon_type"] == "percentage":
        return min(due, to_cents(Decimal(due) / 100 * Decimal(applied["percentage_rate"]) / 100))
    if applied.get("amount_currency") not in (None, currency):
        return 0
    available = applied["amount_cents_remaining"]
    return min(due, int(applied["amount_cents"] if available is None else available))


def _use(state: EmulatorState, applied: Record, discount: int) -> None:
    if applied["amount_cents_remaining"] is not None:
        applied["amount_cents_remaining"] -= discount
    if applied["frequency_duration_remaining"] is not None:
        applied["frequency_duration_remaining"] -= 1
    spent = applied["frequency"] == "once" and not applied["amount_cents_remaining"]
    if spent or applied["frequency_duration_remaining"] == 0:
        applied.update(status="terminated", terminated_at=iso(state.now()))


def discount(state: EmulatorState, invoice: Record, due_cents: int) -> int:
    """Apply the customer's active coupons to ``due_cents``; the cents taken off."""
    total = 0
    customer_id = invoice["customer"]["external_id"]
    for applied in list(state.applied_coupons.values()):
        if applied["external_customer_id"] != customer_id or applied["status"] != "active":
            continue
        taken = _one_discount(applied, due_cents - total, invoice["currency"])
        if taken > 0:
            _record_credit(applied, invoice, taken)
        if taken > 0 or applied["frequency"] != "forever":
            _use(state, applied, taken)
        total += taken
    return total


def _record_credit(applied: Record, invoice: Record, cents: int) -> None:
    credit = {
        "lago_id": new_id(),
        "amount_cents": cents,
        "amount_currency": invoice["currency"],
        "before_taxes": True,
        "item": {
            "lago_item_id": applied["lago_id"],
            "type": "coupon",
            "code": applied["coupon_code"],
            "name": applied["coupon_name"],
        },
        "invoice": {"lago_id": invoice["lago_id"], "payment_status": invoice["payment_status"]},
    }
    applied["credits"].append(credit)
    invoice["credits"].append(credit)


def _listed(state: EmulatorState, request: Request, customer_id: str | None) -> Response:
    """lago-api ``app/queries/applied_coupons_query.rb``: newest first; ``status`` ignored
    unless ``active`` or ``terminated``; ``coupon_code`` (one, or ``coupon_code[]``)."""
    status = request.query_params.get("status")
    if status not in ("active", "terminated"):
        status = None
    codes = request.query_params.getlist("coupon_code") + request.query_params.getlist(
        "coupon_code[]"
    )
    found = [
        a
        for a in state.applied_coupons.values()
        if (customer_id is None or a["external_customer_id"] == customer_id)
        and (status is None or a["status"] == status)
        and (not codes or a["coupon_code"] in codes)
    ]
    # Stored in creation order; Lago's created_at has microseconds: newest first is reversed.
    return paginate(request, "applied_coupons", found[::-1])


async def create(request: Request) -> Response:
    """POST /applied_coupons."""
    params = await read_root(request, "applied_coupon")
    return ok({"applied_coupon": apply_coupon(state_of(request), params)})


async def index(request: Request) -> Response:
    """GET /applied_coupons?external_customer_id=&status=."""
    return _listed(state_of(request), request, request.query_params.get("external_customer_id"))


async def customer_index(request: Request) -> Response:
    """GET /customers/{external_customer_id}/applied_coupons."""
    state = state_of(request)
    customer = get_customer(state, request.path_params["external_customer_id"])
    return _listed(state, request, customer["external_id"])


async def destroy(request: Request) -> Response:
    """DELETE /customers/{external_customer_id}/applied_coupons/{applied_coupon_id}."""
    state = state_of(request)
    customer = get_customer(state, request.path_params["external_customer_id"])
    applied = state.applied_coupons.get(request.path_params["applied_coupon_id"])
    if applied is None or applied["external_customer_id"] != customer["external_id"]:
        raise NotFound("applied_coupon")
    if applied["status"] == "active":
        applied.update(status="terminated", terminated_at=iso(state.now()))
    return ok({"applied_coupon": applied})
