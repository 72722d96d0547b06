"""Validate requests and responses against Lago's OpenAPI spec (``lago-openapi.yaml``).

The spec is found through ``GATEWAY_LAGO_OPENAPI`` or at ``<repo root>/../shared/``. Two
quirks are corrected when it is loaded (LAGO_NOTES section 11):

- event ``properties`` values are declared ``oneOf: [string, integer, number]``; an integer
  matches both ``integer`` and ``number``, so a strict ``oneOf`` rejects ``{"tokens": 1}``,
  which Lago accepts. Those ``oneOf``s are read as ``anyOf`` here.
- three enums are declared nullable (``type: [string, "null"]``) but leave ``null`` out of
  ``enum`` (``SubscriptionObject.on_termination_credit_note``, ``cancellation_reason``,
  event ``operation_type``), so the ``null`` Lago sends is rejected; ``null`` is added.
- the top-level ``security: bearerAuth`` also covers the ``webhooks`` section, but Lago's
  webhooks carry a signature, not the API key; webhook operations get ``security: []``.
- a subscription entitlement's ``plan_value`` is declared non-null, but a privilege that only
  the subscription has is serialized with ``plan_value: null``
  (``app/serializers/v1/entitlement/subscription_entitlement_serializer.rb``); ``null`` is
  allowed. The two subscription ``DELETE .../entitlements/...`` answers are declared one
  ``SubscriptionEntitlement``, but both controllers render the whole collection
  (``subscriptions/entitlements_controller.rb#destroy``, ``.../privileges_controller.rb``);
  they are read as ``SubscriptionEntitlements``.
- ``GET /payments/{lago_id}`` is declared a bare ``PaymentObject``, but
  ``payments_controller.rb#show`` renders it under ``payment``; it is read as ``Payment``.
- the analytics rows (``MrrObject``, ``GrossRevenueObject``, ...) type every figure an
  integer and the currency an enum, but Lago renders its SQL's columns: ``numeric`` sums as
  ``BigDecimal`` strings (``"1000.0"``), ``float`` sums as numbers, and a month without data
  as nulls (``app/models/analytics/*.rb``, ``app/serializers/v1/analytics/*``); those
  fields also take a decimal string or ``null``.
- the Lago SDKs send ``null`` for unset optional fields, which the spec does not allow;
  ``allow_nulls=True`` strips them before validating. Requests from the gateway are
  validated strictly: it must omit what it does not set.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

Spec = OpenAPI
SPEC_ENV = "GATEWAY_LAGO_OPENAPI"
REQUIRE_ENV = "GATEWAY_REQUIRE_LAGO_SPEC"
_HOST = "https://api.getlago.com"
_PREFIX = "/api/v1"
_AMBIGUOUS_TYPES = {"string", "integer", "number"}


class ContractViolation(AssertionError):
    """A request or response that Lago's OpenAPI spec does not allow."""


def spec_path() -> Path:
    """Where the spec is expected: ``$GATEWAY_LAGO_OPENAPI`` or ``<repo>/../shared/``."""
    configured = os.environ.get(SPEC_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "lago-openapi.yaml"


def spec_required() -> bool:
    """Whether a missing spec is a failure (CI sets ``GATEWAY_REQUIRE_LAGO_SPEC=1``)."""
    return os.environ.get(REQUIRE_ENV, "").lower() in ("1", "true", "yes")


def missing_spec_reason() -> str:
    """What to tell a test run that cannot find the spec."""
    return f"Lago OpenAPI spec not found at {spec_path()} (set {SPEC_ENV} to its path)"


def _relax_ambiguous_one_of(node: Any) -> None:
    if isinstance(node, dict):
        members = node.get("oneOf")
        if isinstance(members, list) and {m.get("type") for m in members} == _AMBIGUOUS_TYPES:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _relax_ambiguous_one_of(value)
    elif isinstance(node, list):
        for value in node:
            _relax_ambiguous_one_of(value)


def _allow_null_in_nullable_enums(node: Any) -> None:
    if isinstance(node, dict):
        kinds, values = node.get("type"), node.get("enum")
        nullable = isinstance(kinds, list) and "null" in kinds
        if nullable and isinstance(values, list) and None not in values:
            values.append(None)
        for value in node.values():
            _allow_null_in_nullable_enums(value)
    elif isinstance(node, list):
        for value in node:
            _allow_null_in_nullable_enums(value)


def _unsecure_webhooks(document: dict[str, Any]) -> None:
    for operations in document.get("webhooks", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict):
                operation["security"] = []


def _correct_subscription_entitlements(document: dict[str, Any]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    privilege = schemas.get("SubscriptionEntitlementPrivilegeObject", {})
    for part in privilege.get("allOf", []):
        plan_value = part.get("properties", {}).get("plan_value")
        if plan_value is not None and "oneOf" in plan_value:
            members = plan_value["oneOf"]
            if not any(m.get("type") == "null" for m in members):
                members.append({"type": "null"})
    paths = document.get("paths", {})
    collection = "#/components/schemas/SubscriptionEntitlements"
    for path in (
        "/subscriptions/{external_id}/entitlements/{feature_code}",
        "/subscriptions/{external_id}/entitlements/{feature_code}/privileges/{privilege_code}",
    ):
        answer = paths.get(path, {}).get("delete", {}).get("responses", {}).get("200", {})
        body = answer.get("content", {}).get("application/json", {})
        if "schema" in body:
            body["schema"] = {"$ref": collection}


def _correct_payment_show(document: dict[str, Any]) -> None:
    answer = document.get("paths", {}).get("/payments/{lago_id}", {}).get("get", {})
    body = answer.get("responses", {}).get("200", {}).get("content", {})
    if "schema" in body.get("application/json", {}):
        body["application/json"]["schema"] = {"$ref": "#/components/schemas/Payment"}


_ANALYTICS_ROWS = (
    "GrossRevenueObject",
    "InvoiceCollectionObject",
    "InvoicedUsageObject",
    "MrrObject",
    "OverdueBalanceObject",
)
_DECIMAL = {"type": "string", "pattern": r"^-?\d+\.\d+$"}


def _correct_analytics(document: dict[str, Any]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    for name in _ANALYTICS_ROWS:
        properties = schemas.get(name, {}).get("properties", {})
        for key in ("amount_cents", "invoices_count"):
            if key in properties:
                properties[key] = {"anyOf": [{"type": ["number", "null"]}, _DECIMAL]}
        for key in ("currency", "payment_status"):
            if key in properties:
                properties[key] = {"anyOf": [properties[key], {"type": "null"}]}


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> Spec | None:
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    _relax_ambiguous_one_of(document)
    _allow_null_in_nullable_enums(document)
    _unsecure_webhooks(document)
    _correct_subscription_entitlements(document)
    _correct_analytics(document)
    _correct_payment_show(document)
    # Checking the 877 KB spec against the OpenAPI meta-schema takes seconds and proves
    # nothing about Lago; upstream publishes it bundled and linted.
    return OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))


def load_spec(path: Path | None = None) -> Spec | None:
    """The parsed spec with the quirks above corrected, cached; ``None`` when absent."""
    return _load((path or spec_path()).resolve())


@dataclass
class _Request:
    method: str
    path: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)
    host_url: str = _HOST


@dataclass
class _WebhookRequest:
    name: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)
    method: str = "post"


@dataclass
class _Response:
    status_code: int
    data: bytes | None
    headers: Headers
    content_type: str


def _api_path(url_path: str) -> str:
    return url_path if url_path.startswith(_PREFIX) else _PREFIX + url_path


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(item) for item in value]
    return value


def _request(
    method: str, url_path: str, query: Any, headers: Mapping[str, str], body: bytes | None
) -> _Request:
    header_map = Headers(list(headers.items()))
    parameters = RequestParameters(query=ImmutableMultiDict(query or {}), header=header_map)
    content_type = header_map.get("content-type", "application/json")
    return _Request(method.lower(), _api_path(url_path), body or None, content_type, parameters)


def _describe(error: BaseException) -> str:
    details: list[str] = [str(error)]
    cause: BaseException | None = error
    while cause is not None:
        for item in getattr(cause, "schema_errors", None) or []:
            location = "/".join(str(part) for part in getattr(item, "absolute_path", []))
            details.append(f"  at /{location}: {getattr(item, 'message', item)}"[:400])
        cause = cause.__cause__
    return "\n".join(details)


def _spec(spec: Spec | None) -> Spec:
    found = spec or load_spec()
    if found is None:
        raise FileNotFoundError(missing_spec_reason())
    return found


def validate_request(
    method: str,
    url_path: str,
    query: Any,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    allow_nulls: bool = False,
    spec: Spec | None = None,
) -> None:
    """Raise ``ContractViolation`` naming the path if the spec does not allow this request."""
    if allow_nulls and body:
        body = orjson.dumps(_strip_nulls(orjson.loads(body)))
    request = _request(method, url_path, query, headers, body)
    errors = list(_spec(spec).iter_request_errors(request))
    if errors:
        problems = "\n".join(_describe(error) for error in errors)
        raise ContractViolation(f"request {method.upper()} {url_path}: {problems}")


def validate_response(
    method: str,
    url_path: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    query: Any = None,
    spec: Spec | None = None,
) -> None:
    """Raise ``ContractViolation`` naming the path if the spec does not allow this response."""
    header_map = Headers(list(headers.items()))
    content_type = header_map.get("content-type", "application/json")
    response = _Response(status, body or None, header_map, content_type)
    request = _request(method, url_path, query, {"authorization": "Bearer x"}, None)
    errors = list(_spec(spec).iter_response_errors(request, response))
    if errors:
        problems = "\n".join(_describe(error) for error in errors)
        raise ContractViolation(f"response {status} to {method.upper()} {url_path}: {problems}")


def _webhook_name(spec: Spec, webhook_type: str) -> str:
    names = spec.spec.read_value().get("webhooks", {})
    underscored = webhook_type.replace(".", "_")
    return webhook_type if webhook_type in names else underscored


def validate_webhook(
    webhook_type: str, headers: Mapping[str, str], body: bytes, *, spec: Spec | None = None
) -> None:
    """Raise ``ContractViolation`` if a webhook Lago would send does not match the spec's
    ``webhooks`` entry for ``webhook_type`` (``invoice.created`` → ``invoice_created``)."""
    found = _spec(spec)
    header_map = Headers(list(headers.items()))
    request = _WebhookRequest(
        _webhook_name(found, webhook_type),
        body,
        "application/json",
        RequestParameters(header=header_map),
    )
    errors = list(found.iter_webhook_request_errors(request))
    if errors:
        problems = "\n".join(_describe(error) for error in errors)
        raise ContractViolation(f"webhook {webhook_type}: {problems}")
