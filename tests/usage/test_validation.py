"""What the gateway checks before it accepts usage events, and how it normalises them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway
from tests.usage.servers import METRIC, seed_through


@pytest.fixture
async def gw(database_url: str, emulator: EmulatorState) -> AsyncIterator[Gateway]:
    """A gateway with a small batch limit and body limit, Lago seeded with sub_1 and sub_2."""
    settings = make_settings(database_url, batch_max_events=5, body_max_bytes=4096)
    gateway, manager = await start_gateway(settings, emulator)
    try:
        await seed_through(gateway.runtime.lago, ["sub_1", "sub_2"])
        yield gateway
    finally:
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == []


def _event(tx: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "transaction_id": tx,
        "external_subscription_id": "sub_1",
        "code": METRIC,
        "timestamp": 1756684800,
    }
    event.update(fields)
    return {name: value for name, value in event.items() if value is not None}


async def _post(gw: Gateway, event: dict[str, Any]) -> httpx.Response:
    headers = await gw.headers("events:write")
    return await gw.client.post("/api/v1/events", json={"event": event}, headers=headers)


async def _post_batch(gw: Gateway, events: list[dict[str, Any]]) -> httpx.Response:
    headers = await gw.headers("events:write")
    return await gw.client.post("/api/v1/events/batch", json={"events": events}, headers=headers)


async def _stored(gw: Gateway, tx: str) -> dict[str, Any]:
    headers = await gw.headers("billing:read")
    response = await gw.client.get(f"/gateway/events/{tx}", headers=headers)
    assert response.status_code == 200, response.text
    stored: dict[str, Any] = response.json()["event"]
    return stored


async def _count(gw: Gateway) -> int:
    async with gw.runtime.database.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM usage_events"))).scalar_one())


async def test_a_batch_over_the_configured_limit_is_refused_with_too_many_events(
    gw: Gateway,
) -> None:
    response = await _post_batch(gw, [_event(f"tx{i}") for i in range(6)])
    assert response.status_code == 422
    assert response.json()["error_details"] == {"events": ["too_many_events"]}
    assert (await _post_batch(gw, [_event(f"tx{i}") for i in range(5)])).status_code == 200


async def test_an_empty_batch_and_a_missing_root_are_refused(gw: Gateway) -> None:
    empty = await _post_batch(gw, [])
    assert empty.status_code == 422
    assert empty.json()["error_details"] == {"events": ["no_events"]}
    headers = await gw.headers("events:write")
    missing = await gw.client.post("/api/v1/events", json={"evnt": {}}, headers=headers)
    assert missing.status_code == 400
    garbage = await gw.client.post("/api/v1/events", content=b"{not json", headers=headers)
    assert garbage.status_code == 400
    assert garbage.json()["code"] == "invalid_json"


async def test_a_body_over_the_size_limit_is_refused_with_413_before_it_is_read(
    gw: Gateway,
) -> None:
    big = [_event(f"tx{i}", properties={"pad": "x" * 1000}) for i in range(5)]
    response = await _post_batch(gw, big)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"events": ['
        for _ in range(10):
            yield b'{"transaction_id": "' + b"y" * 1000 + b'"},'
        yield b"{}]}"

    headers = await gw.headers("events:write")
    streamed = await gw.client.post("/api/v1/events/batch", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert await _count(gw) == 0


@pytest.mark.parametrize(
    ("given", "stored", "answered"),
    [
        ("2025-09-01T00:00:00Z", 1756684800, "2025-09-01T00:00:00.000Z"),
        ("2025-09-01T02:00:00.250+02:00", "1756684800.25", "2025-09-01T00:00:00.250Z"),
        ("1756684800", 1756684800, "2025-09-01T00:00:00.000Z"),
        ("1756684800.123", "1756684800.123", "2025-09-01T00:00:00.123Z"),
        (1756684800.5, "1756684800.5", "2025-09-01T00:00:00.500Z"),
    ],
)
async def test_rfc3339_and_numeric_string_timestamps_are_normalised_to_unix_seconds(
    gw: Gateway, given: Any, stored: Any, answered: str
) -> None:
    response = await _post(gw, _event("tx_ts", timestamp=given))
    assert response.status_code == 200, response.text
    assert response.json()["event"]["timestamp"] == answered
    assert (await _stored(gw, "tx_ts"))["event"]["timestamp"] == stored


@pytest.mark.parametrize("given", ["yesterday", "2025-09-01", "2025-09-01T00:00:00", -5, True])
async def test_unreadable_timestamps_are_refused_with_invalid_format(
    gw: Gateway, given: Any
) -> None:
    response = await _post(gw, _event("tx_bad", timestamp=given))
    assert response.status_code == 422
    assert response.json()["error_details"] == {"timestamp": ["invalid_format"]}


async def test_a_missing_timestamp_is_stamped_once_and_a_resend_stays_identical(
    gw: Gateway,
) -> None:
    first = await _post(gw, _event("tx_stamp", timestamp=None))
    assert first.status_code == 200
    stamped = (await _stored(gw, "tx_stamp"))["event"]["timestamp"]
    assert isinstance(stamped, int | str) and float(stamped) > 1.7e9
    again = await _post(gw, _event("tx_stamp", timestamp=None))
    assert again.status_code == 200
    assert again.json()["event"]["timestamp"] == first.json()["event"]["timestamp"]
    assert (await _stored(gw, "tx_stamp"))["event"]["timestamp"] == stamped
    assert await _count(gw) == 1


async def test_properties_must_be_a_flat_object_of_strings_and_numbers(gw: Gateway) -> None:
    nested = await _post(gw, _event("tx_p", properties={"a": {"b": 1}, "ok": 2, "flag": True}))
    assert nested.status_code == 422
    assert nested.json()["error_details"] == {
        "properties.a": ["invalid_value"],
        "properties.flag": ["invalid_value"],
    }
    listed = await _post(gw, _event("tx_p", properties=[1, 2]))
    assert listed.json()["error_details"] == {"properties": ["invalid_type"]}


async def test_missing_identifiers_are_named_like_lago_names_them(gw: Gateway) -> None:
    response = await _post(gw, {"properties": {}})
    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "transaction_id": ["value_is_missing"],
        "code": ["value_is_missing"],
        "external_subscription_id": ["value_is_missing"],
    }


async def test_external_customer_id_is_resolved_to_the_customers_one_active_subscription(
    gw: Gateway,
) -> None:
    response = await _post(
        gw, _event("tx_c", external_subscription_id=None, external_customer_id="cust_sub_2")
    )
    assert response.status_code == 200, response.text
    assert response.json()["event"]["external_subscription_id"] == "sub_2"
    stored = await _stored(gw, "tx_c")
    assert stored["external_subscription_id"] == "sub_2"
    assert "external_customer_id" not in stored["event"]


async def test_a_customer_without_exactly_one_active_subscription_is_refused(
    gw: Gateway,
) -> None:
    for sub in ("sub_m1", "sub_m2"):
        body = {"external_customer_id": "cust_multi", "plan_code": "basic", "external_id": sub}
        await gw.runtime.lago.call("POST", "/subscriptions", json={"subscription": body})
    several = await _post(
        gw, _event("tx_m", external_subscription_id=None, external_customer_id="cust_multi")
    )
    assert several.status_code == 422
    assert several.json()["error_details"] == {
        "external_customer_id": ["several_active_subscriptions"]
    }
    none = await _post(
        gw, _event("tx_n", external_subscription_id=None, external_customer_id="cust_ghost")
    )
    assert none.json()["error_details"] == {"external_customer_id": ["no_active_subscription"]}


async def test_a_subscription_lago_does_not_know_is_refused_with_422(gw: Gateway) -> None:
    response = await _post(gw, _event("tx_u", external_subscription_id="sub_ghost"))
    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "external_subscription_id": ["subscription_not_found"]
    }
    unknown_code = await _post(gw, _event("tx_u", code="no_such_metric"))
    assert unknown_code.json()["error_details"] == {"code": ["billable_metric_not_found"]}
    assert await _count(gw) == 0


async def test_a_batch_is_all_or_nothing_with_errors_keyed_by_index(gw: Gateway) -> None:
    events = [_event("b1"), _event("b2", external_subscription_id="sub_ghost"), _event("b3")]
    response = await _post_batch(gw, events)
    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "1": {"external_subscription_id": ["subscription_not_found"]}
    }
    assert await _count(gw) == 0


async def test_identical_repeats_in_a_batch_are_fine_but_a_changed_repeat_is_refused(
    gw: Gateway,
) -> None:
    same = await _post_batch(gw, [_event("r1"), _event("r1"), _event("r2")])
    assert same.status_code == 200
    assert [e["transaction_id"] for e in same.json()["events"]] == ["r1", "r1", "r2"]
    assert await _count(gw) == 2
    changed = await _post_batch(gw, [_event("r3"), _event("r3", properties={"q": "hd"})])
    assert changed.status_code == 422
    assert changed.json()["error_details"] == {"1": {"transaction_id": ["value_already_exist"]}}
    stored_clash = await _post_batch(gw, [_event("r4"), _event("r1", timestamp=1)])
    assert stored_clash.json()["error_details"] == {
        "1": {"transaction_id": ["value_already_exist"]}
    }
    assert await _count(gw) == 2


async def test_the_same_transaction_id_on_another_subscription_is_another_event(
    gw: Gateway,
) -> None:
    assert (await _post(gw, _event("shared"))).status_code == 200
    assert (await _post(gw, _event("shared", external_subscription_id="sub_2"))).status_code == 200
    headers = await gw.headers("billing:read")
    ambiguous = await gw.client.get("/gateway/events/shared", headers=headers)
    assert ambiguous.status_code == 409
    one = await gw.client.get(
        "/gateway/events/shared", params={"external_subscription_id": "sub_2"}, headers=headers
    )
    assert one.json()["event"]["external_subscription_id"] == "sub_2"
    assert one.json()["event"]["status"] == "pending"
