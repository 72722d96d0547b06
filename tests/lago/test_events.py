"""Events follow Lago's Postgres store: unique per subscription, batches all-or-nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = pytest.mark.asyncio


def event(transaction_id: str, subscription: str = "sub_1", **extra: Any) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "external_subscription_id": subscription,
        "code": "tokens",
        "timestamp": 1756684800,
        "properties": {"tokens": 5},
        **extra,
    }


def details(response: httpx.Response) -> Any:
    body = response.json()
    assert body["status"] == 422
    assert body["error"] == "Unprocessable Entity"
    assert body["code"] == "validation_errors"
    return body["error_details"]


async def test_event_is_stored_and_echoed_in_lagos_shape(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    response = await lago.post("/events", json={"event": event("tx1", timestamp=1756684800.123)})

    assert response.status_code == 200
    body = response.json()["event"]
    assert body["transaction_id"] == "tx1"
    assert body["timestamp"] == "2025-09-01T00:00:00.123Z"
    assert body["lago_customer_id"] is None
    assert body["lago_subscription_id"] is None
    assert body["properties"] == {"tokens": 5}
    assert body["lago_id"]
    assert state.events[("sub_1", "tx1")]["lago_id"] == body["lago_id"]
    assert state.event_requests == 1


async def test_duplicate_single_event_is_422_and_the_first_copy_stays(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await lago.post("/events", json={"event": event("tx1")})
    response = await lago.post("/events", json={"event": event("tx1", properties={"tokens": 9})})

    assert response.status_code == 422
    assert details(response) == {"transaction_id": ["value_already_exist"]}
    assert state.events[("sub_1", "tx1")]["properties"] == {"tokens": 5}
    assert state.duplicate_rejections == 1


async def test_same_transaction_id_on_another_subscription_is_a_new_event(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await lago.post("/events", json={"event": event("tx1", "sub_1")})
    response = await lago.post("/events", json={"event": event("tx1", "sub_2")})

    assert response.status_code == 200
    assert set(state.events) == {("sub_1", "tx1"), ("sub_2", "tx1")}


async def test_batch_stores_every_event_and_echoes_them(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    response = await lago.post("/events/batch", json={"events": [event("a"), event("b")]})

    assert response.status_code == 200
    assert [e["transaction_id"] for e in response.json()["events"]] == ["a", "b"]
    assert len(state.events) == 2


async def test_batch_with_an_already_stored_event_stores_nothing(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await lago.post("/events", json={"event": event("a")})
    batch = [event("b"), event("a"), event("c")]
    response = await lago.post("/events/batch", json={"events": batch})

    assert response.status_code == 422
    assert details(response) == {"1": {"transaction_id": ["value_already_exist"]}}
    assert set(state.events) == {("sub_1", "a")}
    assert state.duplicate_rejections == 1


async def test_batch_with_a_duplicate_inside_the_payload_stores_nothing(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    response = await lago.post("/events/batch", json={"events": [event("a"), event("a")]})

    assert response.status_code == 422
    assert details(response) == {"1": {"transaction_id": ["value_already_exist"]}}
    assert state.events == {}


async def test_batch_errors_are_keyed_by_index_as_strings(lago: httpx.AsyncClient) -> None:
    batch = [
        event("a"),
        {"external_subscription_id": "s", "code": "c"},
        event("c", timestamp="2025-09-01T00:00:00Z"),
        {"transaction_id": "d"},
    ]
    response = await lago.post("/events/batch", json={"events": batch})

    assert details(response) == {
        "1": {"transaction_id": ["value_is_mandatory"]},
        "2": {"timestamp": ["invalid_format"]},
        "3": {"code": ["value_is_mandatory"]},
    }


async def test_batch_of_more_than_100_is_too_many_events(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    response = await lago.post(
        "/events/batch", json={"events": [event(str(i)) for i in range(101)]}
    )

    assert details(response) == {"events": ["too_many_events"]}
    assert state.events == {}


async def test_batch_of_exactly_100_is_accepted(lago: httpx.AsyncClient) -> None:
    response = await lago.post(
        "/events/batch", json={"events": [event(str(i)) for i in range(100)]}
    )

    assert response.status_code == 200


async def test_empty_batch_is_no_events(lago: httpx.AsyncClient) -> None:
    response = await lago.post("/events/batch", json={"events": []})

    assert details(response) == {"events": ["no_events"]}


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("transaction_id", {"transaction_id": ["value_is_mandatory"]}),
        ("code", {"code": ["value_is_mandatory"]}),
    ],
)
async def test_missing_required_field_is_value_is_mandatory(
    lago: httpx.AsyncClient, missing: str, expected: dict[str, Any]
) -> None:
    payload = event("tx1")
    del payload[missing]
    response = await lago.post("/events", json={"event": payload})

    assert details(response) == expected


@pytest.mark.parametrize("timestamp", ["2025-09-01T00:00:00Z", "soon", True, ""])
async def test_non_numeric_timestamp_is_invalid_format(
    lago: httpx.AsyncClient, state: EmulatorState, timestamp: Any
) -> None:
    response = await lago.post("/events", json={"event": event("tx1", timestamp=timestamp)})

    assert details(response) == {"timestamp": ["invalid_format"]}
    assert state.events == {}


async def test_numeric_string_timestamp_keeps_milliseconds(lago: httpx.AsyncClient) -> None:
    response = await lago.post("/events", json={"event": event("tx1", timestamp="1756684800.5")})

    assert response.json()["event"]["timestamp"] == "2025-09-01T00:00:00.500Z"


async def test_unknown_subscription_and_metric_are_accepted(lago: httpx.AsyncClient) -> None:
    payload = event("tx1", "no_such_sub", code="no_such_metric")
    response = await lago.post("/events", json={"event": payload})

    assert response.status_code == 200


async def test_missing_root_key_is_400(lago: httpx.AsyncClient) -> None:
    response = await lago.post("/events", json={"evnt": event("tx1")})

    assert response.status_code == 400
    assert response.json() == {
        "status": 400,
        "error": "BadRequest: param is missing or the value is empty or invalid: event",
    }


async def test_get_event_by_transaction_id(lago: httpx.AsyncClient) -> None:
    await lago.post("/events", json={"event": event("tx/1")})

    found = await lago.get("/events/tx%2F1")
    missing = await lago.get("/events/nope")

    assert found.json()["event"]["transaction_id"] == "tx/1"
    assert missing.status_code == 404
    assert missing.json() == {"status": 404, "error": "Not Found", "code": "event_not_found"}


async def test_list_events_filters_by_subscription(lago: httpx.AsyncClient) -> None:
    await lago.post("/events/batch", json={"events": [event("a", "s1"), event("b", "s2")]})

    response = await lago.get("/events", params={"external_subscription_id": "s2"})

    assert [e["transaction_id"] for e in response.json()["events"]] == ["b"]
    assert response.json()["meta"]["total_count"] == 1


async def test_wrong_api_key_is_401(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    response = await lago.post(
        "/events", json={"event": event("tx1")}, headers={"Authorization": "Bearer wrong"}
    )

    assert response.status_code == 401
    assert response.json() == {"status": 401, "error": "Unauthorized"}
    assert state.events == {}
