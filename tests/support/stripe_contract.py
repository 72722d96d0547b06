"""Stripe's published contract (the 2023-08-16 spec, ``stripe_spec.py``) applied to the wire.

``validate_request`` decodes Stripe's form encoding (``a[b][0][c]=v`` as nested objects and
lists, ``decode_form``) and checks method, path, ``Stripe-Version``, query and body against
the operation; ``validate_response`` checks a JSON answer (2xx against the operation's
schema, errors against ``error``); ``validate_object`` an object or event by its ``object``.

``ContractCheck`` is what a fake calls for each request, answer and event: a violation is
kept in ``VIOLATIONS`` (the root conftest fails the test that caused it, even when the SDK
took the exception for a network error) and raised as ``StripeContractViolation``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from tests.support.stripe_spec import (
    Operation,
    StripeContractViolation,
    StripeSpec,
    load_spec,
    missing_spec_reason,
    spec_required,
)

__all__ = [
    "VIOLATIONS",
    "ContractCheck",
    "Operation",
    "StripeContractViolation",
    "StripeSpec",
    "decode_form",
    "load_spec",
    "missing_spec_reason",
    "sdk_generated_key",
    "spec_required",
    "validate_object",
    "validate_request",
    "validate_response",
]

_SDK_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

VIOLATIONS: list[str] = []


# ---- form encoding ----------------------------------------------------------------------


def decode_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form encoding (``a[b][0][c]=v``) as nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key) or [key]
        node: Any = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    decoded: dict[str, Any] = _listify(root)
    return decoded


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


def _spec(spec: StripeSpec | None) -> StripeSpec:
    found = spec or load_spec()
    if found is None:
        raise FileNotFoundError(missing_spec_reason())
    return found


# ---- validation -------------------------------------------------------------------------


def validate_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    *,
    query: str = "",
    body: bytes = b"",
    spec: StripeSpec | None = None,
) -> Operation:
    """Raise ``StripeContractViolation`` unless the spec allows this request; its operation."""
    found = _spec(spec)
    where = f"request {method} {path}"
    version = {k.lower(): v for k, v in headers.items()}.get("stripe-version")
    if version != found.version:
        raise StripeContractViolation(
            f"{where}: Stripe-Version is {version!r}, not {found.version}"
        )
    operation = found.operation(method, path)
    problems: list[str] = []
    definition = operation.definition
    for param in definition["parameters"]:
        if param["in"] == "path":
            value = operation.path_params.get(param["name"])
            problems += [f"path {param['name']} {e}" for e in found.errors(param["schema"], value)]
    query_values = decode_form(parse_qsl(query, keep_blank_values=True))
    problems += _query_problems(found, definition, query_values)
    form = decode_form(parse_qsl(body.decode(), keep_blank_values=True)) if body else {}
    if form and definition["body"] is None:
        problems.append("a body where the operation takes none")
    elif definition["body"] is not None:
        problems += found.errors(definition["body"], form)
    if problems:
        raise StripeContractViolation(f"{where}: " + "; ".join(problems))
    return operation


def _query_problems(
    spec: StripeSpec, definition: dict[str, Any], values: dict[str, Any]
) -> list[str]:
    params = {p["name"]: p for p in definition["parameters"] if p["in"] == "query"}
    problems = [f"unknown query parameter {name!r}" for name in values if name not in params]
    for name, param in params.items():
        if name in values:
            problems += [f"query {name} {e}" for e in spec.errors(param["schema"], values[name])]
        elif param["required"]:
            problems.append(f"missing required query parameter {name!r}")
    return problems


def validate_response(
    method: str, path: str, status: int, body: bytes, *, spec: StripeSpec | None = None
) -> None:
    """Raise ``StripeContractViolation`` unless the spec allows this JSON answer."""
    found = _spec(spec)
    where = f"answer {status} to {method} {path}"
    responses = found.operation(method, path).definition["responses"]
    schema = responses.get(str(status)) if 200 <= status < 300 else responses.get("default")
    if schema is None:
        raise StripeContractViolation(f"{where}: the spec defines no JSON answer for {status}")
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise StripeContractViolation(f"{where}: not JSON ({exc})") from exc
    problems = found.errors(schema, answer)
    if problems:
        raise StripeContractViolation(f"{where}: " + "; ".join(problems))


def validate_object(obj: Mapping[str, Any], *, spec: StripeSpec | None = None) -> None:
    """Raise ``StripeContractViolation`` unless ``obj`` is a valid object of its ``object`` kind."""
    found = _spec(spec)
    kind = str(obj.get("object"))
    problems = found.errors(found.object_schema(kind), obj)
    if kind == "event" and obj.get("type") not in found.event_types:
        problems.append(f"no event type {obj.get('type')!r} in {found.version}")
    if problems:
        raise StripeContractViolation(f"{kind} {obj.get('id')}: " + "; ".join(problems))


def sdk_generated_key(key: str | None) -> bool:
    """Whether an ``Idempotency-Key`` is the SDK's random one (uuid-shaped), not derived."""
    return key is None or _SDK_KEY.fullmatch(key) is not None


# ---- the fakes' hook ----------------------------------------------------------------------


class ContractCheck:
    """What a fake Stripe calls for each request, answer and event it handles.

    Without the spec the checks are off, unless ``GATEWAY_REQUIRE_STRIPE_SPEC=1`` makes its
    absence an error. A violation is recorded (here and in ``VIOLATIONS``) and raised.
    """

    def __init__(self) -> None:
        self.spec = load_spec()
        if self.spec is None and spec_required():
            raise FileNotFoundError(missing_spec_reason())
        self.violations: list[str] = []

    def _record(self, violation: StripeContractViolation) -> StripeContractViolation:
        self.violations.append(str(violation))
        VIOLATIONS.append(str(violation))
        return violation

    def request(
        self, method: str, path: str, headers: Mapping[str, str], query: str, body: bytes
    ) -> None:
        """Check one request the gateway sent."""
        if self.spec is None:
            return
        try:
            validate_request(method, path, headers, query=query, body=body, spec=self.spec)
        except StripeContractViolation as exc:
            raise self._record(exc) from None

    def response(self, method: str, path: str, status: int, body: bytes) -> None:
        """Check one answer the fake gives."""
        if self.spec is None:
            return
        try:
            validate_response(method, path, status, body, spec=self.spec)
        except StripeContractViolation as exc:
            raise self._record(exc) from None

    def event(self, event: Mapping[str, Any]) -> None:
        """Check an event the fake records: its envelope and its ``data.object``."""
        if self.spec is None:
            return
        try:
            validate_object(event, spec=self.spec)
            validate_object(event["data"]["object"], spec=self.spec)
        except StripeContractViolation as exc:
            raise self._record(exc) from None

    def derived_key(self, method: str, path: str, key: str | None) -> None:
        """A POST must carry an idempotency key the gateway derived from local state."""
        if method == "POST" and sdk_generated_key(key):
            raise self._record(
                StripeContractViolation(
                    f"request POST {path}: Idempotency-Key {key!r} is the SDK's random one, "
                    "not derived from a local id"
                )
            )
