"""Customers: upsert by ``external_id``, list, fetch, delete."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id
from .errors import NotFound, missing
from .http import ok, paginate, read_root, state_of
from .outbox import emit
from .state import EmulatorState, Record

_COMPUTED = {"lago_id", "sequential_id", "slug", "created_at", "updated_at", "applicable_timezone"}
# Keys the spec declares non-nullable in responses: an SDK's explicit null leaves them unchanged.
_NOT_NULL = {
    "billing_entity_code",
    "account_type",
    "finalize_zero_amount_invoice",
    "skip_invoice_custom_sections",
    "billing_configuration",
    "shipping_address",
    "metadata",
    "integration_customers",
    "tax_codes",
    "external_id",
}


def _new_customer(state: EmulatorState, external_id: str) -> Record:
    sequence = state.next_sequence("customer")
    now = iso(state.now())
    return {
        "lago_id": new_id(),
        "sequential_id": sequence,
        "slug": f"LAG-EMU-{sequence:03d}",
        "external_id": external_id,
        "billing_entity_code": "default",
        "account_type": "customer",
        "name": None,
        "firstname": None,
        "lastname": None,
        "email": None,
        "currency": None,
        "country": None,
        "timezone": None,
        "applicable_timezone": "UTC",
        "net_payment_term": None,
        "created_at": now,
        "updated_at": now,
        "finalize_zero_amount_invoice": "inherit",
        "skip_invoice_custom_sections": False,
        "billing_configuration": {"invoice_grace_period": 0, "document_locale": "en"},
        "metadata": [],
        "taxes": [],
        "integration_customers": [],
        "applicable_invoice_custom_sections": [],
    }


def _metadata(state: EmulatorState, items: list[dict[str, Any]]) -> list[Record]:
    now = iso(state.now())
    return [
        {
            "lago_id": new_id(),
            "key": str(item.get("key")),
            "value": str(item.get("value")),
            "display_in_invoice": bool(item.get("display_in_invoice")),
            "created_at": now,
        }
        for item in items
    ]


def _apply(state: EmulatorState, customer: Record, params: dict[str, Any]) -> None:
    for key, value in params.items():
        if key in _COMPUTED or (value is None and key in _NOT_NULL):
            continue
        if key == "billing_configuration" and isinstance(value, dict):
            merged = {k: v for k, v in value.items() if v is not None}
            customer["billing_configuration"].update(merged)
        elif key == "metadata" and isinstance(value, list):
            customer["metadata"] = _metadata(state, value)
        elif key != "tax_codes":
            customer[key] = value
    customer["applicable_timezone"] = customer.get("timezone") or "UTC"
    customer["updated_at"] = iso(state.now())


def ensure_customer(state: EmulatorState, external_id: str) -> Record:
    """The customer, created bare if unknown (as ``POST /subscriptions`` does)."""
    customer = state.customers.get(external_id)
    if customer is None:
        customer = state.customers[external_id] = _new_customer(state, external_id)
        emit(state, "customer.created", "customer", customer)
    return customer


def upsert_customer(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Create or update by ``external_id``; only the given keys change."""
    external_id = params.get("external_id")
    if not external_id:
        raise missing("external_id")
    created = str(external_id) not in state.customers
    customer = state.customers.get(str(external_id)) or _new_customer(state, str(external_id))
    _apply(state, customer, params)
    state.customers[customer["external_id"]] = customer
    emit(state, "customer.created" if created else "customer.updated", "customer", customer)
    return customer


def get_customer(state: EmulatorState, external_id: str) -> Record:
    """The customer, or 404 ``customer_not_found``."""
    customer = state.customers.get(external_id)
    if customer is None:
        raise NotFound("customer")
    return customer


def _end(subscription: Record, now: str) -> None:
    if subscription["status"] == "active":
        subscription.update(status="terminated", terminated_at=now)
    elif subscription["status"] == "pending":
        subscription.update(status="canceled", canceled_at=now)


async def create(request: Request) -> Response:
    """POST /customers."""
    params = await read_root(request, "customer")
    return ok({"customer": upsert_customer(state_of(request), params)})


async def index(request: Request) -> Response:
    """GET /customers."""
    return paginate(request, "customers", list(state_of(request).customers.values()))


async def show(request: Request) -> Response:
    """GET /customers/{external_id}."""
    customer = get_customer(state_of(request), request.path_params["external_id"])
    return ok({"customer": customer})


async def destroy(request: Request) -> Response:
    """DELETE /customers/{external_id}: terminates its subscriptions too."""
    state = state_of(request)
    customer = get_customer(state, request.path_params["external_id"])
    for subscription in state.subscriptions.values():
        if subscription["external_customer_id"] == customer["external_id"]:
            _end(subscription, iso(state.now()))
    del state.customers[customer["external_id"]]
    return ok({"customer": customer})
