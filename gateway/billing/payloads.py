"""Lago-shaped request bodies: read the root object, check what Lago requires, drop the SDKs' nulls.

Bodies are validated, not rebuilt: what reaches Lago is the caller's JSON minus its ``null``s
(Lago's SDKs send ``null`` for every unset field), so fields this gateway does not know yet
still pass through. A route names the root fields where Lago gives ``null`` a meaning (e.g. a
subscription update's ``ending_at: null`` undoes a scheduled end); those nulls are kept.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from gateway.errors import BadRequest, NotFound, ValidationFailed

Id = Annotated[str, StringConstraints(min_length=1, max_length=255)]
MISSING_TYPES = frozenset({"missing", "string_too_short"})


class LagoInput(BaseModel):
    """Base of request checks: unknown keys are allowed and passed on untouched."""

    model_config = ConfigDict(extra="allow")


def read_root(body: bytes, root: str, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The object under ``root`` without nulls, except a null of a ``nullable`` field;
    400 as Rails answers when it is absent."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from exc
    value = parsed.get(root) if isinstance(parsed, dict) else None
    if not isinstance(value, dict):
        raise BadRequest(f"param is missing or the value is empty: {root}", code="bad_request")
    cleaned: dict[str, Any] = without_nulls(value)
    cleaned.update({name: None for name in nullable if name in value and value[name] is None})
    return cleaned


def without_nulls(value: Any) -> Any:
    """``value`` with every ``null`` object member removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def check(model: type[LagoInput], params: dict[str, Any]) -> None:
    """Raise 422 naming each wrong field with Lago's codes (``value_is_mandatory`` …)."""
    try:
        model.model_validate(params)
    except ValidationError as exc:
        raise ValidationFailed(details=lago_details(exc)) from exc


def lago_details(exc: ValidationError) -> dict[str, list[str]]:
    details: dict[str, list[str]] = {}
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "body"
        reason = "value_is_mandatory" if error["type"] in MISSING_TYPES else "value_is_invalid"
        if reason not in details.setdefault(field, []):
            details[field].append(reason)
    return details


def lago_uuid(value: str, resource: str) -> str:
    """A Lago id (a UUID); anything else is Lago's ``{resource}_not_found`` without asking Lago."""
    try:
        uuid.UUID(value)
    except ValueError as exc:
        raise NotFound(code=f"{resource}_not_found") from exc
    return value


def required_query(params: list[tuple[str, str]], name: str) -> str:
    """The non-empty value of query parameter ``name``, or 422 naming it."""
    value = next((v for k, v in params if k == name and v), None)
    if value is None:
        raise ValidationFailed(details={name: ["value_is_mandatory"]})
    return value


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a JSON body the endpoint reads itself (nested models inlined)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, definitions)}},
        }
    }


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {k: _inline(v, definitions) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node
