"""What the gateway checks before it accepts usage events, and how it normalises them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.catalog.service import apply_catalog
from gateway.usage.parsing import EventRules, ParsedEvent, parse_event
from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway
from tests.usage.servers import METRIC, seed_through


@pytest.fixture
async def gw(database_url: str, emulator: EmulatorState) -> AsyncIterator[Gateway]:
    """A gateway with small batch, body and event limits, Lago seeded with sub_1 and sub_2."""
    settings = make_settings(
        database_url, batch_max_events=5, body_max_bytes=4096, event_max_bytes=1024
    )
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


@pytest.mark.parametrize(
    "given",
    ["yesterday", "2025-09-01", "2025-09-01T00:00:00", -5, "-1.5", -0.5, "NaN", "Infinity", True],
)
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
        "transaction_id": ["value_is_mandatory"],
        "code": ["value_is_mandatory"],
        "external_subscription_id": ["value_is_mandatory"],
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
    stored_clash = await _post_batch(gw, [_event("r4"), _event("r1", timestamp=1756684801)])
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


_NUL_CASES = [
    ({"transaction_id": "tx\x00"}, {"transaction_id": ["value_is_invalid"]}),
    ({"code": "photo_generation\x00"}, {"code": ["value_is_invalid"]}),
    ({"external_subscription_id": "sub_1\x00"}, {"external_subscription_id": ["value_is_invalid"]}),
    (
        {"external_subscription_id": None, "external_customer_id": "cust_sub_1\x00"},
        {"external_customer_id": ["value_is_invalid"]},
    ),
    ({"properties": {"quality": "hd\x00"}}, {"properties.quality": ["value_is_invalid"]}),
    ({"properties": {"qual\x00ity": "hd"}}, {"properties": ["value_is_invalid"]}),
]


@pytest.mark.parametrize(("fields", "errors"), _NUL_CASES)
async def test_a_nul_character_is_refused_with_value_is_invalid_wherever_it_is(
    gw: Gateway, fields: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    single = await _post(gw, _event("tx_nul", **fields))
    assert single.status_code == 422
    assert single.json()["error_details"] == errors
    batch = await _post_batch(gw, [_event("tx_ok"), _event("tx_nul", **fields)])
    assert batch.status_code == 422
    assert batch.json()["error_details"] == {"1": errors}
    assert await _count(gw) == 0


async def test_a_nul_in_one_request_leaves_concurrent_valid_requests_alone(gw: Gateway) -> None:
    events = [_event(f"tx_{i}") for i in range(4)] + [_event("tx_\x00")]
    answers = await asyncio.gather(*(_post(gw, event) for event in events))
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 422]
    assert await _count(gw) == 4


async def test_a_row_the_database_refuses_past_validation_is_a_422_for_its_request_alone(
    gw: Gateway, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation bypassed (NUL let through): PostgreSQL refuses the row inside a group
    commit; only the request that carried it fails, as a 422, and the rejection is audited."""

    def lenient(raw: dict[str, Any], received_at: float, rules: EventRules) -> Any:
        tx = raw["transaction_id"]
        parsed = parse_event({**raw, "transaction_id": tx.replace("\x00", "")}, received_at, rules)
        return parsed._replace(transaction_id=tx) if isinstance(parsed, ParsedEvent) else parsed

    monkeypatch.setattr("gateway.usage.service.parse_event", lenient)
    events = [_event(f"tx_{i}") for i in range(4)] + [_event("tx_\x00")]
    answers = await asyncio.gather(*(_post(gw, event) for event in events))
    batch = await _post_batch(gw, [_event("tx_b"), _event("tx_b\x00")])

    if backend == "sqlite":  # SQLite keeps NUL in text: nothing to refuse
        assert [a.status_code for a in [*answers, batch]] == [200] * 6
        return
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 422]
    assert answers[4].json()["error_details"] == {"event": ["value_is_invalid"]}
    assert batch.status_code == 422
    assert batch.json()["error_details"] == {"events": ["value_is_invalid"]}
    assert await _count(gw) == 4
    async with gw.runtime.database.engine.connect() as conn:
        outcomes = await conn.execute(
            text("SELECT outcome, count(*) FROM audit_entries GROUP BY outcome")
        )
        assert dict(outcomes.all()) == {"accepted": 4, "rejected": 2}


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
@pytest.mark.parametrize("field", ["transaction_id", "code", "external_subscription_id"])
async def test_a_blank_identifier_is_refused_with_value_is_mandatory(
    gw: Gateway, field: str, blank: str
) -> None:
    response = await _post(gw, _event("tx_blank", **{field: blank}))
    assert response.status_code == 422
    assert response.json()["error_details"] == {field: ["value_is_mandatory"]}
    batch = await _post_batch(gw, [_event("tx_ok"), _event("tx_blank", **{field: blank})])
    assert batch.json()["error_details"] == {"1": {field: ["value_is_mandatory"]}}
    assert await _count(gw) == 0


async def test_a_blank_customer_id_names_no_subscription(gw: Gateway) -> None:
    alone = _event("tx_blank", external_subscription_id=None, external_customer_id="  ")
    response = await _post(gw, alone)
    assert response.status_code == 422
    assert response.json()["error_details"] == {"external_subscription_id": ["value_is_mandatory"]}
    # Beside a subscription it is not needed (and never sent): it counts as absent.
    beside = await _post(gw, _event("tx_blank", external_customer_id=" "))
    assert beside.status_code == 200, beside.text


_DAY = 86_400


@pytest.mark.parametrize(
    "given",
    [
        1e300,
        "1e300",
        1756684800000,  # milliseconds sent as seconds
        946684799,
        "1999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "two days ahead",
    ],
)
async def test_a_timestamp_outside_the_accepted_range_is_refused_with_value_is_out_of_range(
    gw: Gateway, given: Any
) -> None:
    if given == "two days ahead":
        given = int(time.time()) + 2 * _DAY
    response = await _post(gw, _event("tx_far", timestamp=given))
    assert response.status_code == 422, response.text
    assert response.json()["error_details"] == {"timestamp": ["value_is_out_of_range"]}
    batch = await _post_batch(gw, [_event("tx_ok"), _event("tx_far", timestamp=given)])
    assert batch.json()["error_details"] == {"1": {"timestamp": ["value_is_out_of_range"]}}
    assert await _count(gw) == 0


async def test_timestamps_from_2000_to_a_day_ahead_are_accepted(gw: Gateway) -> None:
    soon = time.time() + _DAY - 60
    for index, given in enumerate([946684800, "2000-01-01T00:00:00Z", int(soon), str(soon)]):
        response = await _post(gw, _event(f"tx_edge_{index}", timestamp=given))
        assert response.status_code == 200, (given, response.text)


async def test_an_event_over_the_size_limit_is_refused_with_value_is_too_long(
    gw: Gateway,
) -> None:
    """The limit (1024 bytes here) is on the payload Lago would receive, in UTF-8 bytes."""
    fits = await _post(gw, _event("tx_fits", properties={"pad": "x" * 800}))
    assert fits.status_code == 200, fits.text
    for pad in ("x" * 1000, "é" * 500):  # 500 characters, 1000 bytes
        big = await _post(gw, _event("tx_big", properties={"pad": pad}))
        assert big.status_code == 422
        assert big.json()["error_details"] == {"event": ["value_is_too_long"]}
    batch = await _post_batch(
        gw, [_event("tx_ok"), _event("tx_big", properties={"pad": "é" * 500})]
    )
    assert batch.json()["error_details"] == {"1": {"event": ["value_is_too_long"]}}
    assert await _count(gw) == 1


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-inf", "12abc"])
async def test_a_precise_amount_must_be_a_finite_number(gw: Gateway, amount: str) -> None:
    response = await _post(gw, _event("tx_amount", precise_total_amount_cents=amount))
    assert response.status_code == 422
    assert response.json()["error_details"] == {"precise_total_amount_cents": ["invalid_value"]}


_METERED_CATALOG = """
version: 1
billable_metrics:
  - {code: seconds, name: Seconds, aggregation_type: sum_agg, field_name: seconds}
  - {code: credits, name: Credits, aggregation_type: sum_agg, field_name: amount,
     allow_negative: true}
  - {code: peak_gpus, name: Peak GPUs, aggregation_type: max_agg, field_name: gpus}
  - {code: level, name: Level, aggregation_type: latest_agg, field_name: level}
  - {code: storage, name: Storage, aggregation_type: weighted_sum_agg, field_name: gb,
     weighted_interval: seconds}
  - {code: users, name: Users, aggregation_type: unique_count_agg, field_name: user_id}
  - {code: calls, name: Calls, aggregation_type: count_agg}
  - {code: tokens, name: Tokens, aggregation_type: sum_agg, field_name: total,
     expression: "event.properties.input + event.properties.output"}
"""


@pytest.fixture
async def metered(
    database_url: str, emulator: EmulatorState, tmp_path: Path
) -> AsyncIterator[Gateway]:
    """A gateway whose catalog has one metric of each aggregation, all of them in Lago."""
    path = tmp_path / "catalog.yaml"
    path.write_text(_METERED_CATALOG, encoding="utf-8")
    settings = make_settings(database_url, catalog_path=str(path))
    gateway, manager = await start_gateway(settings, emulator)
    try:
        await seed_through(gateway.runtime.lago, ["sub_1"])
        assert gateway.parts.catalog is not None
        await apply_catalog(gateway.runtime.lago, gateway.parts.catalog)
        yield gateway
    finally:
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == []


_NOT_A_NUMBER = ["value_is_not_valid_number"]
_BELOW_ZERO = ["value_is_out_of_range"]
_MISSING = ["value_is_mandatory"]


@pytest.mark.parametrize(
    ("code", "properties", "error"),
    [
        ("seconds", {"seconds": 12}, None),
        ("seconds", {"seconds": 12.5}, None),
        ("seconds", {"seconds": "12.5"}, None),  # Lago casts numeric strings
        ("seconds", {"seconds": 0}, None),
        ("seconds", {"seconds": "abc"}, _NOT_A_NUMBER),
        ("seconds", {"seconds": "1e3"}, _NOT_A_NUMBER),  # not Lago's numeric shape
        ("seconds", {"seconds": " 12"}, _NOT_A_NUMBER),
        ("seconds", {"seconds": "NaN"}, _NOT_A_NUMBER),
        ("seconds", {"seconds": "١٢"}, _NOT_A_NUMBER),  # digits, but not ASCII ones
        ("seconds", {"other": 1}, _MISSING),
        ("seconds", None, _MISSING),
        ("seconds", {"seconds": -1}, _BELOW_ZERO),
        ("seconds", {"seconds": "-0.5"}, _BELOW_ZERO),
        ("seconds", {"seconds": True}, ["invalid_value"]),
        ("credits", {"amount": -5}, None),
        ("credits", {"amount": "-2.5"}, None),
        ("credits", {"amount": "-x"}, _NOT_A_NUMBER),
        ("peak_gpus", {"gpus": "eight"}, _NOT_A_NUMBER),
        ("peak_gpus", {"gpus": -8}, _BELOW_ZERO),
        ("level", {"level": -1.5}, _BELOW_ZERO),
        ("level", {}, _MISSING),
        ("storage", {"gb": "lots"}, _NOT_A_NUMBER),
        ("users", {"user_id": "u_1"}, None),  # unique count: any value, but one
        ("users", {}, _MISSING),
        ("calls", None, None),  # a count needs no property
        ("tokens", {"input": 3, "output": 4}, None),  # computed by Lago's expression
    ],
)
async def test_the_property_a_metric_aggregates_must_be_there_and_numeric_where_it_adds_up(
    metered: Gateway, code: str, properties: dict[str, Any] | None, error: list[str] | None
) -> None:
    event = _event("tx_m", code=code, properties=properties)
    response = await _post(metered, event)
    batch = await _post_batch(metered, [_event("tx_other", code="calls"), event])
    if error is None:
        assert response.status_code == 200, response.text
        assert batch.status_code == 200, batch.text
        return
    field = metered.parts.lookups.metric_rules[code].field_name
    assert response.status_code == 422
    assert response.json()["error_details"] == {f"properties.{field}": error}
    assert batch.json()["error_details"] == {"1": {f"properties.{field}": error}}
    assert await _count(metered) == 0


async def test_a_streamed_body_over_the_limit_is_a_413_on_every_route(gw: Gateway) -> None:
    def chunks(head: bytes, tail: bytes) -> Any:
        async def gen() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            yield head
            for _ in range(6000):
                yield b"y" * 1000
            yield tail

        return gen()

    # A passthrough route reading its raw body, and one whose body FastAPI parses itself.
    customer = await gw.client.post(
        "/api/v1/customers",
        content=chunks(b'{"customer": {"external_id": "acme", "name": "', b'"}}'),
        headers=await gw.headers("billing:write"),
    )
    endpoint = await gw.client.post(
        "/gateway/endpoints",
        content=chunks(b'{"url": "https://hooks.example.com/', b'", "filter_types": ["*"]}'),
        headers={**await gw.headers("admin"), "Content-Type": "application/json"},
    )

    for response in (customer, endpoint):
        assert response.status_code == 413, response.text
        assert response.json()["code"] == "payload_too_large"
