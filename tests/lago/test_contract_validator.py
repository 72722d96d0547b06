"""The contract validator itself: spec quirks corrected, violations named by path."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from lago.emulator.contract import (
    ContractViolation,
    validate_request,
    validate_response,
    validate_webhook,
)

pytestmark = pytest.mark.usefixtures("require_spec")

AUTH = {"authorization": "Bearer k", "content-type": "application/json"}


def event(transaction_id: str) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "external_subscription_id": "sub_1",
        "code": "tokens",
        "timestamp": 1756684800,
        "properties": {"tokens": 1, "m": "x"},
    }


def test_integer_event_properties_are_valid_despite_the_specs_one_of() -> None:
    body = orjson.dumps({"event": event("t1")})

    validate_request("POST", "/api/v1/events", {}, AUTH, body)


def test_nulls_from_an_sdk_are_tolerated_only_when_allowed() -> None:
    body = orjson.dumps(
        {"event": {**event("t1"), "precise_total_amount_cents": None, "timestamp": None}}
    )

    validate_request("POST", "/events", {}, AUTH, body, allow_nulls=True)
    with pytest.raises(ContractViolation, match="POST /events"):
        validate_request("POST", "/events", {}, AUTH, body)


def test_a_bad_response_is_reported_with_its_path() -> None:
    body = orjson.dumps({"event": {"transaction_id": "t1"}})

    with pytest.raises(ContractViolation, match=r"response 200 to GET /events/\{?t1"):
        validate_response("GET", "/events/t1", 200, {"content-type": "application/json"}, body)


def test_a_webhook_with_the_wrong_object_is_reported() -> None:
    body = orjson.dumps(
        {
            "webhook_type": "invoice.created",
            "object_type": "invoice",
            "organization_id": "6a2d1b58-5a0e-4a0d-9c4c-2f1f3f8a0b11",
        }
    )

    with pytest.raises(ContractViolation, match=r"webhook invoice\.created"):
        validate_webhook("invoice.created", {}, body)
