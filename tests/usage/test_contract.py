"""One event contract: the schema ``/openapi.json`` shows and the hot-path parser agree."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.usage.parsing import ID_LIMITS, REQUIRED, ParsedEvent, parse_event
from gateway.usage.schemas import EventIn, inline_schema

RECEIVED = 1_756_684_800.0
SCHEMA = inline_schema(EventIn)
FIELDS: dict[str, Any] = SCHEMA["properties"]
VALID = {
    "transaction_id": "tx_1",
    "external_subscription_id": "sub_1",
    "external_customer_id": "cus_1",
    "code": "photo_generation",
    "timestamp": 1_756_684_700,
    "properties": {"seconds": 3},
    "precise_total_amount_cents": "12.5",
}
# A value of each JSON type; where a field reads strings or objects in a format of its
# own, a well-formed one.
SAMPLES: dict[str, Any] = {
    "string": "x",
    "integer": 1_756_684_700,
    "number": 1_756_684_700.5,
    "boolean": True,
    "array": ["x"],
    "object": {"seconds": 3},
    "null": None,
}
STRING_SAMPLE = {"timestamp": "1756684700", "precise_total_amount_cents": "12.5"}
# Accepted beyond the schema, as Lago accepts them: integer ids, a numeric amount.
LENIENT = {
    *((name, "integer") for name in ID_LIMITS),
    ("precise_total_amount_cents", "integer"),
    ("precise_total_amount_cents", "number"),
}


def _errors(event: dict[str, Any]) -> dict[str, list[str]]:
    result = parse_event(event, RECEIVED)
    return {} if isinstance(result, ParsedEvent) else result


def _types(field: dict[str, Any]) -> set[str]:
    return {option["type"] for option in field.get("anyOf", [field])}


def test_a_valid_event_of_every_field_is_accepted_and_unknown_fields_are_ignored() -> None:
    assert set(VALID) == set(FIELDS)
    assert _errors(VALID) == {}
    assert _errors({**VALID, "not_in_the_contract": ["x"]}) == {}


def test_the_required_fields_are_the_schemas() -> None:
    assert set(REQUIRED) == set(SCHEMA["required"])
    for name in FIELDS:
        errors = _errors({key: value for key, value in VALID.items() if key != name})
        assert (errors.get(name) == ["value_is_mandatory"]) is (name in SCHEMA["required"]), name


@pytest.mark.parametrize("name", sorted(FIELDS))
@pytest.mark.parametrize("json_type", sorted(SAMPLES))
def test_each_field_takes_the_types_the_schema_gives_it(name: str, json_type: str) -> None:
    sample = STRING_SAMPLE.get(name, "x") if json_type == "string" else SAMPLES[json_type]
    accepted = name not in _errors({**VALID, name: sample})
    documented = json_type in _types(FIELDS[name])
    if json_type == "null" and name not in SCHEMA["required"]:
        assert accepted  # an optional field may be null
    else:
        assert accepted is (documented or (name, json_type) in LENIENT), (name, json_type)


@pytest.mark.parametrize("json_type", sorted(SAMPLES))
def test_property_values_take_the_types_the_schema_gives_them(json_type: str) -> None:
    allowed = _types(FIELDS["properties"]["anyOf"][0]["additionalProperties"])
    errors = _errors({**VALID, "properties": {"seconds": 3, "other": SAMPLES[json_type]}})
    assert ("properties.other" not in errors) is (json_type in allowed)


def test_the_ids_are_the_schemas_strings_and_their_limit_is_the_contracts() -> None:
    assert set(ID_LIMITS) == {name for name in FIELDS if "string" in _types(FIELDS[name])} - {
        "timestamp",
        "precise_total_amount_cents",
    }
    for name, limit in ID_LIMITS.items():
        assert _errors({**VALID, name: "x" * limit}) == {}
        assert _errors({**VALID, name: "x" * (limit + 1)}) == {name: ["value_is_too_long"]}
