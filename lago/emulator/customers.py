"""Customers: upsert by ``external_id``, list, fetch, delete.

Lago's app/controllers/api/v1/customers_controller.rb, app/services/customers/
upsert_from_api_service.rb and the validations of app/models/customer.rb.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import available_timezones

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id
from .currencies import ACCEPTED_CURRENCIES
from .errors import NotFound, ValidationFailed
from .http import ok, paginate, query_list, read_root, state_of
from .outbox import emit
from .state import EmulatorState, Record

METADATA_PER_CUSTOMER = 5  # Metadata::CustomerMetadata::COUNT_PER_CUSTOMER
_ZERO_AMOUNT_OPTIONS = ("inherit", "skip", "finalize")
# Regex::EMAIL (app/support/regex.rb) without its quoted local parts and IP-literal domains.
_EMAIL = re.compile(
    r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?",
    re.IGNORECASE,
)
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u00a0\u200e\u200f\ufeff]")
_NULL_BYTE_FIELDS = ("name", "firstname", "lastname")
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


def _metadata(state: EmulatorState, customer: Record, items: list[dict[str, Any]]) -> list[Record]:
    """Lago's Customers::Metadata::UpdateService: an item whose ``id`` names a stored entry
    updates it, the others are created, and entries not named are deleted."""
    now = iso(state.now())
    stored = {entry["lago_id"]: entry for entry in customer.get("metadata") or []}
    kept = []
    for item in items:
        entry = stored.get(str(item.get("id"))) or {"lago_id": new_id(), "created_at": now}
        entry.update(
            key=str(item.get("key")),
            value=str(item.get("value")),
            display_in_invoice=bool(item.get("display_in_invoice")),
        )
        kept.append(entry)
    return kept


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    """Lago's normalizers: null bytes leave names, invisible characters leave the email,
    countries are upper-cased and a null ``finalize_zero_amount_invoice`` is ``inherit``."""
    cleaned = dict(params)
    if cleaned.get("external_id") is not None:
        cleaned["external_id"] = str(cleaned["external_id"])
    for key in _NULL_BYTE_FIELDS:
        if isinstance(cleaned.get(key), str):
            cleaned[key] = cleaned[key].replace("\x00", "")
    if isinstance(cleaned.get("email"), str):
        cleaned["email"] = _INVISIBLE.sub("", cleaned["email"]).strip()
    if isinstance(cleaned.get("country"), str):
        cleaned["country"] = cleaned["country"].upper()
    if "finalize_zero_amount_invoice" in cleaned:
        cleaned["finalize_zero_amount_invoice"] = (
            cleaned["finalize_zero_amount_invoice"] or "inherit"
        )
    return cleaned


def _valid_email(value: str) -> bool:
    return bool(value) and all(_EMAIL.fullmatch(part.strip()) for part in value.split(","))


def _record_errors(customer: Record | None, params: dict[str, Any]) -> dict[str, list[str]]:
    """The model validations ``customer.save!`` runs (app/models/customer.rb)."""
    errors: dict[str, list[str]] = {}
    if not str(params.get("external_id") or "").strip():
        errors["external_id"] = ["value_is_mandatory"]
    currency = params.get("currency")
    if currency is not None and currency not in ACCEPTED_CURRENCIES:
        errors["currency"] = ["value_is_invalid"]
    email = params.get("email")
    changed = customer is None or email != customer.get("email")
    if email and changed and not _valid_email(str(email)):
        errors["email"] = ["invalid_email_format"]
    timezone = params.get("timezone")
    if timezone is not None and timezone != "UTC" and timezone not in available_timezones():
        errors["timezone"] = ["invalid_timezone"]
    return errors


def _validate(customer: Record | None, params: dict[str, Any]) -> None:
    """UpsertFromApiService's checks, in its order: metadata count, the zero-amount option,
    then the record's own validations, all reported together."""
    if len(params.get("metadata") or []) > METADATA_PER_CUSTOMER:
        raise ValidationFailed({"metadata": ["invalid_count"]})
    zero_amount = params.get("finalize_zero_amount_invoice")
    if zero_amount is not None and zero_amount not in _ZERO_AMOUNT_OPTIONS:
        raise ValidationFailed({"finalize_zero_amount_invoice": ["invalid_value"]})
    errors = _record_errors(customer, params)
    if errors:
        raise ValidationFailed(errors)


def _apply(state: EmulatorState, customer: Record, params: dict[str, Any]) -> None:
    for key, value in params.items():
        if key in _COMPUTED or (value is None and key in _NOT_NULL):
            continue
        if key == "billing_configuration" and isinstance(value, dict):
            merged = {k: v for k, v in value.items() if v is not None}
            customer["billing_configuration"].update(merged)
        elif key == "metadata" and isinstance(value, list):
            customer["metadata"] = _metadata(state, customer, value)
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
    """Create or update by ``external_id``; only the given keys change (Lago's
    Customers::UpsertFromApiService). Invalid values are 422 and change nothing."""
    params = _clean(params)
    external_id = str(params.get("external_id") or "")
    existing = state.customers.get(external_id) if external_id else None
    _validate(existing, params)
    customer = existing or _new_customer(state, external_id)
    _apply(state, customer, params)
    state.customers[customer["external_id"]] = customer
    emit(state, "customer.updated" if existing else "customer.created", "customer", customer)
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


_LIST_FILTERS = (
    ("currencies", "currency"),
    ("countries", "country"),
    ("states", "state"),
    ("zipcodes", "zipcode"),
    ("account_type", "account_type"),
)


async def index(request: Request) -> Response:
    """GET /customers (oldest first: Lago lists newest first) with CustomersQuery's
    ``external_id``, ``currencies[]``, ``countries[]``, ``states[]``, ``zipcodes[]``,
    ``account_type[]`` and ``search_term`` (app/queries/customers_query.rb)."""
    found = list(state_of(request).customers.values())
    query = request.query_params
    if query.get("external_id"):
        found = [c for c in found if c["external_id"] == query["external_id"]]
    elif query.get("search_term"):
        term = query["search_term"].lower()
        fields = ("name", "firstname", "lastname", "legal_name", "external_id", "email")
        found = [c for c in found if any(term in str(c.get(f) or "").lower() for f in fields)]
    for name, field in _LIST_FILTERS:
        wanted = query_list(request, name)
        if wanted:
            found = [c for c in found if c.get(field) in wanted]
    return paginate(request, "customers", found)


async def show(request: Request) -> Response:
    """GET /customers/{external_id}."""
    customer = get_customer(state_of(request), request.path_params["external_id"])
    return ok({"customer": customer})


async def destroy(request: Request) -> Response:
    """DELETE /customers/{external_id}: terminates its subscriptions too (404 when unknown,
    Customers::DestroyService)."""
    state = state_of(request)
    customer = get_customer(state, request.path_params["external_id"])
    for subscription in state.subscriptions.values():
        if subscription["external_customer_id"] == customer["external_id"]:
            _end(subscription, iso(state.now()))
    del state.customers[customer["external_id"]]
    return ok({"customer": customer})
