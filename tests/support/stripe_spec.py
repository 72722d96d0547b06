"""Stripe's published OpenAPI spec (API version 2023-08-16), loaded once and made checkable.

The spec is found through ``GATEWAY_STRIPE_OPENAPI`` or at ``<repo root>/../shared/``. It is
4 MB of YAML (two seconds to parse), so it is read once per change of the file: the parsed,
converted form is cached as JSON in ``$TMPDIR/gateway-stripe-spec/``, keyed by the file's
path, size and mtime and by ``_CONVERSION``, and loads in about 50 ms.

The conversion turns OpenAPI 3.0 into JSON Schema (draft 4) and states what Stripe's API
does that the spec leaves implicit:

- ``nullable: true`` admits ``null``; ``$ref``s point into the document (``_BASE``);
  ``oneOf`` is read as ``anyOf`` (Stripe's alternatives overlap: ``""`` is also a string).
- Objects are closed: a property the spec does not list is a violation, in a request
  (Stripe answers ``Received unknown parameter``) and in an answer (a fake inventing a
  field the gateway might come to read).
- Request parameters arrive form-encoded, every value a string: where the spec says
  integer, number or boolean, the string form (``"42"``, ``"true"``) is accepted, as
  Stripe accepts it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_ENV = "GATEWAY_STRIPE_OPENAPI"
REQUIRE_ENV = "GATEWAY_REQUIRE_STRIPE_SPEC"
_BASE = "urn:stripe-openapi"
_CONVERSION = 2  # bump when the conversion below changes: the cache is keyed by it
_FORM = "application/x-www-form-urlencoded"
_DROPPED = ("description", "title", "x-expandableFields", "x-stripeResource", "x-resourceId")
_STRING_FORMS: dict[str, dict[str, Any]] = {
    "integer": {"type": ["integer", "string"], "pattern": r"^-?[0-9]+$"},
    "number": {"type": ["number", "string"], "pattern": r"^-?[0-9]+(\.[0-9]+)?$"},
    "boolean": {"type": ["boolean", "string"], "enum": [True, False, "true", "false"]},
}


class StripeContractViolation(AssertionError):
    """A request or answer that Stripe's published spec (2023-08-16) does not allow."""


def spec_path() -> Path:
    """Where the spec is expected: ``$GATEWAY_STRIPE_OPENAPI`` or ``<repo>/../shared/``."""
    configured = os.environ.get(SPEC_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "stripe-openapi.yaml"


def spec_required() -> bool:
    """Whether a missing spec is a failure (CI sets ``GATEWAY_REQUIRE_STRIPE_SPEC=1``)."""
    return os.environ.get(REQUIRE_ENV, "").lower() in ("1", "true", "yes")


def missing_spec_reason() -> str:
    """What to tell a test run that cannot find the spec."""
    return f"Stripe OpenAPI spec not found at {spec_path()} (set {SPEC_ENV} to its path)"


# ---- conversion: OpenAPI 3.0 → closed JSON Schema ------------------------------------------


def _convert(node: Any, *, form: bool) -> Any:
    if not isinstance(node, dict):
        return node
    schema: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _DROPPED:
            schema.update(_convert_key(key, value, form))
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    if isinstance(schema.get("$ref"), str):
        schema["$ref"] = _BASE + schema["$ref"]
    if form and schema.get("type") in _STRING_FORMS:
        schema.update(_STRING_FORMS[schema["type"]])
    if schema.pop("nullable", False):
        schema = _nullable(schema)
    return schema


def _convert_key(key: str, value: Any, form: bool) -> dict[str, Any]:
    if key == "properties":
        return {key: {name: _convert(sub, form=form) for name, sub in value.items()}}
    if key in ("items", "additionalProperties", "not"):
        return {key: _convert(value, form=form)}
    if key in ("anyOf", "oneOf", "allOf"):
        # oneOf read as anyOf: Stripe's alternatives overlap ("" is also a string).
        return {"allOf" if key == "allOf" else "anyOf": [_convert(sub, form=form) for sub in value]}
    return {key: value}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema or "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    schema["type"] = [*kinds, "null"]
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _convert_operation(operation: dict[str, Any]) -> dict[str, Any]:
    form = ((operation.get("requestBody") or {}).get("content") or {}).get(_FORM) or {}
    responses: dict[str, Any] = {}
    for status, answer in (operation.get("responses") or {}).items():
        schema = ((answer.get("content") or {}).get("application/json") or {}).get("schema")
        responses[status] = _convert(schema, form=False) if schema else None
    return {
        "parameters": [
            {
                "name": p["name"],
                "in": p["in"],
                "required": bool(p.get("required")),
                "schema": _convert(p.get("schema") or {}, form=True),
            }
            for p in operation.get("parameters") or []
        ],
        "body": _convert(form["schema"], form=True) if "schema" in form else None,
        "responses": responses,
    }


def _event_types(document: dict[str, Any]) -> list[str]:
    """Every event type of this version: what a webhook endpoint may subscribe to."""
    create = document["paths"]["/v1/webhook_endpoints"]["post"]
    body = create["requestBody"]["content"][_FORM]["schema"]
    types: list[str] = body["properties"]["enabled_events"]["items"]["enum"]
    return [kind for kind in types if kind != "*"]


def _convert_document(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": document["info"]["version"],
        "event_types": _event_types(document),
        "components": {
            "schemas": {
                name: _convert(schema, form=False)
                for name, schema in document["components"]["schemas"].items()
            }
        },
        "paths": {
            template: {
                method: _convert_operation(operation)
                for method, operation in operations.items()
                if method in ("get", "post", "delete")
            }
            for template, operations in document["paths"].items()
        },
    }


def _cache_file(path: Path) -> Path:
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{_CONVERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / "gateway-stripe-spec" / f"{digest}.json"


def _read_converted(path: Path) -> dict[str, Any]:
    cached = _cache_file(path)
    try:
        loaded: dict[str, Any] = orjson.loads(cached.read_bytes())
        return loaded
    except (OSError, orjson.JSONDecodeError):
        pass
    with path.open("rb") as handle:
        document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    converted = _convert_document(document)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(orjson.dumps(converted))
    partial.replace(cached)  # atomic: a concurrent run reads the old file or the whole new one
    for stale in cached.parent.glob("*.json"):
        if stale != cached:
            stale.unlink(missing_ok=True)
    return converted


# ---- the spec ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One operation of the spec, as matched from a request."""

    method: str
    template: str
    path_params: dict[str, str]
    definition: dict[str, Any] = field(repr=False)


class StripeSpec:
    """The converted spec: operations by method and path, validators built on first use."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.version: str = document["version"]
        self.event_types = frozenset(document["event_types"])
        resource = Resource(contents=document, specification=DRAFT4)
        self._registry: Registry[Any] = Registry().with_resource(_BASE, resource)
        self._routes: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        for template, operations in document["paths"].items():
            pattern = re.compile(re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template)))
            for method in operations:
                self._routes.setdefault(method.upper(), []).append((pattern, template))
        for routes in self._routes.values():  # literal segments win: /search before /{id}
            routes.sort(key=lambda route: (route[1].count("{"), route[1]))
        self._validators: dict[int, tuple[dict[str, Any], Draft4Validator]] = {}
        self._objects: dict[str, dict[str, Any]] = {}

    def operation(self, method: str, path: str) -> Operation:
        """The operation ``method path`` is an instance of; a violation when Stripe has none."""
        for pattern, template in self._routes.get(method.upper(), []):
            found = pattern.fullmatch(path)
            if found:
                names = re.findall(r"\{([^}]+)\}", template)
                definition = self.document["paths"][template][method.lower()]
                params = dict(zip(names, found.groups(), strict=True))
                return Operation(method.upper(), template, params, definition)
        raise StripeContractViolation(f"Stripe {self.version} has no operation {method} {path}")

    def errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        """What in ``instance`` the (converted) ``schema`` rejects, located by JSON path."""
        cached = self._validators.get(id(schema))
        if cached is None or cached[0] is not schema:  # the schema is kept: its id stays its own
            cached = (schema, Draft4Validator(schema, registry=self._registry))
            self._validators[id(schema)] = cached
        validator = cached[1]
        found = list(validator.iter_errors(instance))
        if not found:
            return []
        best = best_match(found)
        rest = [error for error in found if error is not best]
        return [_located(error) for error in [best, *rest][:5]]

    def object_schema(self, kind: str) -> dict[str, Any]:
        """The schema of a Stripe object by its ``object`` field (``checkout.session``)."""
        if kind not in self.document["components"]["schemas"]:
            raise StripeContractViolation(f"Stripe {self.version} has no object {kind!r}")
        return self._objects.setdefault(kind, {"$ref": f"{_BASE}#/components/schemas/{kind}"})


def _located(error: ValidationError) -> str:
    location = "/".join(str(part) for part in error.absolute_path)
    return f"at /{location}: {error.message}"[:400]


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> StripeSpec | None:
    if not path.is_file():
        return None
    return StripeSpec(_read_converted(path))


def load_spec(path: Path | None = None) -> StripeSpec | None:
    """The converted spec, cached in memory and on disk; ``None`` when the file is absent."""
    return _load((path or spec_path()).resolve())
