"""Webhook endpoints (at most 10, URL unique) and the JWT public key."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id
from .errors import LagoError, NotFound, ValidationFailed
from .http import ok, paginate, read_root, state_of
from .state import EmulatorState, Record

MAX_ENDPOINTS = 10  # WebhookEndpoint::LIMIT
SIGNATURE_ALGOS = ("jwt", "hmac")
# The ``name`` of every entry of Lago's config/webhook_event_types.yml.
EVENT_TYPES = frozenset(
    [
        "alert.triggered",
        "billable_metric.created",
        "billable_metric.updated",
        "billable_metric.deleted",
        "customer.created",
        "customer.updated",
        "customer.accounting_provider_created",
        "customer.accounting_provider_error",
        "customer.crm_provider_created",
        "customer.crm_provider_error",
        "customer.payment_provider_created",
        "customer.payment_provider_error",
        "customer.checkout_url_generated",
        "customer.tax_provider_error",
        "customer.vies_check",
        "credit_note.created",
        "credit_note.generated",
        "credit_note.provider_refund_failure",
        "dunning_campaign.finished",
        "event.error",
        "events.errors",
        "feature.created",
        "feature.updated",
        "feature.deleted",
        "fee.created",
        "fee.tax_provider_error",
        "invoice.created",
        "invoice.one_off_created",
        "invoice.paid_credit_added",
        "invoice.generated",
        "invoice.drafted",
        "invoice.ready_to_finalize",
        "invoice.voided",
        "invoice.deleted",
        "invoice.payment_dispute_lost",
        "invoice.payment_status_updated",
        "invoice.payment_overdue",
        "invoice.payment_failure",
        "invoice.resynced",
        "integration.provider_error",
        "order.created",
        "order.executed",
        "order_form.created",
        "order_form.signed",
        "order_form.expired",
        "order_form.voided",
        "payment.succeeded",
        "payment.requires_action",
        "payment_provider.error",
        "payment_receipt.created",
        "payment_receipt.generated",
        "payment_request.created",
        "payment_request.payment_failure",
        "payment_request.payment_status_updated",
        "plan.created",
        "plan.updated",
        "plan.deleted",
        "quote.created",
        "quote.approved",
        "quote.voided",
        "subscription.canceled",
        "subscription.incomplete",
        "subscription.terminated",
        "subscription.started",
        "subscription.updated",
        "subscription.termination_alert",
        "subscription.trial_ended",
        "subscription.usage_threshold_reached",
        "wallet.created",
        "wallet.depleted_ongoing_balance",
        "wallet.terminated",
        "wallet.updated",
        "wallet_transaction.created",
        "wallet_transaction.updated",
        "wallet_transaction.payment_failure",
    ]
)


def _valid_url(url: Any) -> bool:
    """UrlValidator: an http(s) URL with a host."""
    if not isinstance(url, str):
        return False
    parsed = urlsplit(url)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


def _event_types(value: Any, errors: dict[str, list[str]]) -> list[str] | None:
    """WebhookEndpoint#normalize_event_types and #validate_event_types: stripped, lower-cased,
    blanks and repeats dropped, ``["*"]`` is every type (``null``); a non-list is
    ``must_be_array``, unknown names are listed as Rails' message says them."""
    if value is None:
        return None
    if not isinstance(value, list):
        errors["event_types"] = ["must_be_array"]
        return []
    normalized: list[str] = []
    for item in value:
        name = "" if item is None else str(item).strip().lower()
        if name and name not in normalized:
            normalized.append(name)
    if normalized == ["*"]:
        return None
    unknown = [name for name in normalized if name not in EVENT_TYPES]
    if unknown:
        errors["event_types"] = [f"contains invalid types: {json.dumps(unknown)}"]
    return normalized


def _signature_algo(value: Any) -> str:
    """Rails raises ArgumentError for a value outside the ``signature_algo`` enum, which
    the services do not rescue: Lago answers 500."""
    if value not in SIGNATURE_ALGOS:
        raise LagoError(500, {"status": 500, "error": "Internal Server Error"})
    return str(value)


def _save(state: EmulatorState, endpoint: Record, params: dict[str, Any], *, new: bool) -> None:
    """Apply the keys given and validate as WebhookEndpoint does, every error at once."""
    changed = dict(endpoint)
    for key in ("webhook_url", "name"):
        if key in params:
            changed[key] = params[key]
    if params.get("signature_algo") is not None or (not new and "signature_algo" in params):
        changed["signature_algo"] = _signature_algo(params["signature_algo"])
    errors: dict[str, list[str]] = {}
    url = changed["webhook_url"]
    url_errors = [] if url and str(url).strip() else ["value_is_missing"]
    if not _valid_url(url):
        url_errors.append("url_is_invalid")
    others = (e for e in state.webhook_endpoints.values() if e["lago_id"] != endpoint["lago_id"])
    if any(e["webhook_url"] == url for e in others):
        url_errors.append("value_already_exist")
    if url_errors:
        errors["webhook_url"] = url_errors
    if new and len(state.webhook_endpoints) >= MAX_ENDPOINTS:
        errors["base"] = ["exceeded_limit"]
    if "event_types" in params:
        changed["event_types"] = _event_types(params["event_types"], errors)
    if errors:
        raise ValidationFailed(errors)
    endpoint.update(changed)


def create_endpoint(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Register a URL Lago will post webhooks to (WebhookEndpoints::CreateService)."""
    endpoint: Record = {
        "lago_id": new_id(),
        "lago_organization_id": state.organization_id,
        "webhook_url": None,
        "signature_algo": "jwt",
        "name": None,
        "event_types": None,
        "created_at": iso(state.now()),
    }
    _save(state, endpoint, params, new=True)
    state.webhook_endpoints[endpoint["lago_id"]] = endpoint
    return endpoint


def public_key_base64(state: EmulatorState) -> str:
    """The PEM public key, base64-encoded as Lago serves it."""
    pem = state.rsa_private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(pem).decode()


def _get(state: EmulatorState, lago_id: str) -> Record:
    endpoint = state.webhook_endpoints.get(lago_id)
    if endpoint is None:
        raise NotFound("webhook_endpoint")
    return endpoint


async def create(request: Request) -> Response:
    """POST /webhook_endpoints."""
    params = await read_root(request, "webhook_endpoint")
    return ok({"webhook_endpoint": create_endpoint(state_of(request), params)})


async def index(request: Request) -> Response:
    """GET /webhook_endpoints."""
    return paginate(
        request, "webhook_endpoints", list(state_of(request).webhook_endpoints.values())
    )


async def show(request: Request) -> Response:
    """GET /webhook_endpoints/{lago_id}."""
    return ok({"webhook_endpoint": _get(state_of(request), request.path_params["lago_id"])})


async def update(request: Request) -> Response:
    """PUT /webhook_endpoints/{lago_id}: WebhookEndpoints::UpdateService sets only the keys
    given (``signature_algo`` stays when absent); 404 ``webhook_endpoint_not_found``."""
    state = state_of(request)
    endpoint = _get(state, request.path_params["lago_id"])
    params = await read_root(request, "webhook_endpoint")
    _save(state, endpoint, params, new=False)
    return ok({"webhook_endpoint": endpoint})


async def destroy(request: Request) -> Response:
    """DELETE /webhook_endpoints/{lago_id}."""
    state = state_of(request)
    endpoint = _get(state, request.path_params["lago_id"])
    del state.webhook_endpoints[endpoint["lago_id"]]
    return ok({"webhook_endpoint": endpoint})


async def json_public_key(request: Request) -> Response:
    """GET /webhooks/json_public_key."""
    return ok({"webhook": {"public_key": public_key_base64(state_of(request))}})
