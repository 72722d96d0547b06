"""Lago's own event specs, ported: each test names the spec file and its ``it``.

BATCH = spec/services/events/create_batch_service_spec.rb
SINGLE = spec/services/events/create_service_spec.rb
CONTROLLER = spec/requests/api/v1/events_controller_spec.rb
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = pytest.mark.asyncio

TIMESTAMP = 1704070923.123456  # Time.parse("2024-01-01T01:02:03.123456Z").to_f


def build_params(count: int = 3, **override: Any) -> list[dict[str, Any]]:
    """BATCH ``build_params``: ``txn_0``... on ``sub_12345``."""
    return [
        {
            "external_subscription_id": "sub_12345",
            "code": "sum_agg",
            "transaction_id": f"txn_{i}",
            "precise_total_amount_cents": "123.34",
            "properties": {"foo": f"bar_{i}"},
            "timestamp": TIMESTAMP,
            **override,
        }
        for i in range(count)
    ]


def with_ids(ids: list[str], subscriptions: list[str] | None = None) -> list[dict[str, Any]]:
    events = build_params(len(ids))
    for index, event in enumerate(events):
        event["transaction_id"] = ids[index]
        if subscriptions:
            event["external_subscription_id"] = subscriptions[index]
    return events


async def batch(lago: httpx.AsyncClient, events: list[Any]) -> httpx.Response:
    return await lago.post("/events/batch", json={"events": events})


def failure(response: httpx.Response) -> Any:
    """BATCH ``test_validation_failure``: a 422 ``validation_errors``."""
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_errors"
    return response.json()["error_details"]


def single(ids: list[int]) -> dict[str, Any]:
    return {str(index): {"transaction_id": ["value_already_exist"]} for index in ids}


# --- BATCH ---------------------------------------------------------------------------------


async def test_batch_creates_all_events(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """BATCH: it "creates all events"."""
    response = await batch(lago, build_params())

    assert response.status_code == 200
    assert len(state.events) == 3


async def test_batch_persists_events_with_correct_attributes(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """BATCH: it "persists events with correct attributes"."""
    response = await batch(lago, build_params())

    for index, event in enumerate(response.json()["events"]):
        stored = state.events[("sub_12345", f"txn_{index}")]
        assert stored["lago_id"] == event["lago_id"]
        assert event["code"] == "sum_agg"
        assert event["properties"] == {"foo": f"bar_{index}"}
        assert event["precise_total_amount_cents"] == "123.34"
        assert event["timestamp"] == "2024-01-01T01:02:03.123Z"


@pytest.mark.parametrize("events", [[], None], ids=["empty", "null"])
async def test_batch_when_no_events_are_provided(lago: httpx.AsyncClient, events: Any) -> None:
    """BATCH: context "when no events are provided", it "returns a no_events error"."""
    assert failure(await batch(lago, events)) == {"events": ["no_events"]}


async def test_batch_without_events_key_is_no_events(lago: httpx.AsyncClient) -> None:
    """BATCH: "when no events are provided" (``events_params.blank?`` with the key absent)."""
    assert failure(await lago.post("/events/batch", json={})) == {"events": ["no_events"]}


async def test_batch_when_events_count_is_at_the_limit(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """BATCH: context "when events count is at the limit"."""
    assert (await batch(lago, build_params(100))).status_code == 200
    assert len(state.events) == 100


async def test_batch_when_events_count_is_too_big(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """BATCH: context "when events count is too big"."""
    assert failure(await batch(lago, build_params(101))) == {"events": ["too_many_events"]}
    assert state.events == {}


async def test_batch_with_duplicate_transaction_id_in_consecutive_positions(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """BATCH: context "with duplicate transaction_id in consecutive positions"."""
    assert failure(await batch(lago, build_params(2, transaction_id="duplicate_txn"))) == single(
        [1]
    )
    assert state.events == {}


@pytest.mark.parametrize("position", [0, 2, 4], ids=["beginning", "middle", "end"])
async def test_batch_with_already_existing_event(
    lago: httpx.AsyncClient, state: EmulatorState, position: int
) -> None:
    """BATCH: context "with already existing event (beginning|middle|end)"."""
    await lago.post("/events", json={"event": build_params(1, transaction_id="existing")[0]})
    ids = [f"txn_{i}" for i in range(5)]
    ids[position] = "existing"

    assert failure(await batch(lago, with_ids(ids))) == single([position])
    assert len(state.events) == 1


async def test_batch_with_duplicate_transaction_id_in_non_consecutive_positions(
    lago: httpx.AsyncClient,
) -> None:
    """BATCH: context "with duplicate transaction_id in non-consecutive positions"."""
    ids = ["duplicate_txn", "txn_1", "duplicate_txn", "txn_3"]

    assert failure(await batch(lago, with_ids(ids))) == single([2])


async def test_batch_with_multiple_duplicate_transaction_ids(lago: httpx.AsyncClient) -> None:
    """BATCH: context "with multiple duplicate transaction_ids"."""
    ids = ["duplicate_txn_a", "duplicate_txn_b", "duplicate_txn_a", "duplicate_txn_b"]

    assert failure(await batch(lago, with_ids(ids))) == single([2, 3])


async def test_batch_with_three_events_having_the_same_transaction_id(
    lago: httpx.AsyncClient,
) -> None:
    """BATCH: context "with three events having the same transaction_id"."""
    assert failure(await batch(lago, build_params(3, transaction_id="dup"))) == single([1, 2])


async def test_batch_with_already_existing_event_at_first_position(
    lago: httpx.AsyncClient,
) -> None:
    """BATCH: context "with already existing event at first position"."""
    await lago.post("/events", json={"event": build_params(1, transaction_id="existing_txn")[0]})

    assert failure(await batch(lago, with_ids(["existing_txn", "txn_1"]))) == single([0])


async def test_batch_when_timestamp_is_not_present_in_the_payload(
    lago: httpx.AsyncClient,
) -> None:
    """BATCH: context "when timestamp is not present in the payload" (the current time)."""
    event = build_params(1)[0]
    del event["timestamp"]

    response = await batch(lago, [event])

    assert response.status_code == 200
    assert response.json()["events"][0]["timestamp"] >= "2025-"


async def test_batch_when_timestamp_is_given_as_string(lago: httpx.AsyncClient) -> None:
    """BATCH: context "when timestamp is given as string"."""
    response = await batch(lago, build_params(1, timestamp="1704070923.5"))

    assert response.json()["events"][0]["timestamp"] == "2024-01-01T01:02:03.500Z"


async def test_batch_when_timestamp_is_in_a_wrong_format(lago: httpx.AsyncClient) -> None:
    """BATCH: context "when timestamp is in a wrong format" (``Time.current.to_s``)."""
    events = build_params(1, timestamp="2024-01-01 01:02:03 UTC")

    assert failure(await batch(lago, events)) == {"0": {"timestamp": ["invalid_format"]}}


async def test_batch_when_timestamp_is_sent_with_decimal_precision(
    lago: httpx.AsyncClient,
) -> None:
    """BATCH: context "when timestamp is sent with decimal precision"."""
    response = await batch(lago, build_params(1, timestamp=1693842312.344))

    assert response.json()["events"][0]["timestamp"] == "2023-09-04T15:45:12.344Z"


async def test_batch_when_timestamps_are_repeating_floats(lago: httpx.AsyncClient) -> None:
    """BATCH: context "when timestamp is sent with decimal fractions represented by repeating
    floats" (BigDecimal keeps .1 exact; a binary float would show .099)."""
    events = with_ids(["a", "b", "c"])
    for event, stamp in zip(events, ["1780586634.1", "1780586634.2", "1780586634.3"], strict=True):
        event["timestamp"] = stamp

    response = await batch(lago, events)

    assert [e["timestamp"] for e in response.json()["events"]] == [
        "2026-06-04T15:23:54.100Z",
        "2026-06-04T15:23:54.200Z",
        "2026-06-04T15:23:54.300Z",
    ]


# --- bulk_insert_events, beyond the spec: transaction_id indexed alone ----------------------


async def test_batch_same_transaction_id_on_two_subscriptions_fails_the_second(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """create_batch_service.rb ``bulk_insert_events``: rows are indexed by transaction_id
    alone, so the second event is refused although its subscription differs."""
    events = with_ids(["X", "X"], ["sub_1", "sub_2"])

    assert failure(await batch(lago, events)) == single([1])
    assert state.events == {}


@pytest.mark.parametrize("stored_first", [True, False])
async def test_batch_stored_pair_and_new_pair_flag_the_second_occurrence(
    lago: httpx.AsyncClient, state: EmulatorState, stored_first: bool
) -> None:
    """``bulk_insert_events``: (sub_1, X) stored, (sub_2, X) new: only (sub_2, X) comes back
    from insert_all, the first occurrence in payload order takes it, the second is flagged."""
    await lago.post("/events", json={"event": with_ids(["X"], ["sub_1"])[0]})
    order = ["sub_1", "sub_2"] if stored_first else ["sub_2", "sub_1"]

    assert failure(await batch(lago, with_ids(["X", "X"], order))) == single([1])
    assert set(state.events) == {("sub_1", "X")}


async def test_batch_events_without_subscription_never_clash_with_the_store(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """app/models/event.rb: no presence validation on external_subscription_id; NULLs are
    distinct in the unique index, so the same transaction_id stores twice."""
    event = {"transaction_id": "X", "code": "sum_agg"}

    first = await batch(lago, [event])
    second = await batch(lago, [event])

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["events"][0]["external_subscription_id"] is None
    assert len(state.events) == 2


async def test_batch_field_errors_come_alone_before_any_duplicate_check(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """create_batch_service.rb: ``validate_events`` fails first; ``bulk_insert_events`` only
    runs for a valid batch."""
    await lago.post("/events", json={"event": with_ids(["stored"])[0]})
    events = with_ids(["stored", "", "fresh"])

    assert failure(await batch(lago, events)) == {"1": {"transaction_id": ["value_is_mandatory"]}}
    assert state.duplicate_rejections == 0


async def test_batch_invalid_timestamp_hides_the_events_other_errors(
    lago: httpx.AsyncClient,
) -> None:
    """create_batch_service.rb: the ArgumentError from the timestamp skips ``valid?``."""
    events = [{"timestamp": "soon"}]

    assert failure(await batch(lago, events)) == {"0": {"timestamp": ["invalid_format"]}}


async def test_batch_drops_entries_that_are_not_objects(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """events_controller.rb ``batch_params``: ``permit`` keeps only the array's objects."""
    response = await batch(lago, ["junk", *with_ids(["a"]), 7])

    assert response.status_code == 200
    assert len(state.events) == 1
    assert failure(await batch(lago, ["junk"])) == {"events": ["no_events"]}


# --- SINGLE --------------------------------------------------------------------------------


def create_args(**override: Any) -> dict[str, Any]:
    """SINGLE ``create_args``."""
    return {
        "external_subscription_id": "sub_1",
        "code": "sum_agg",
        "transaction_id": "tx_1",
        "precise_total_amount_cents": None,
        "properties": {"foo": "bar"},
        "timestamp": 1704070923,
        **override,
    }


async def create(lago: httpx.AsyncClient, **override: Any) -> httpx.Response:
    return await lago.post("/events", json={"event": create_args(**override)})


async def test_single_creates_an_event(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """SINGLE: it "creates an event"."""
    response = await create(lago)

    event = response.json()["event"]
    assert response.status_code == 200
    assert event["timestamp"] == "2024-01-01T01:02:03.000Z"
    assert event["properties"] == {"foo": "bar"}
    assert event["precise_total_amount_cents"] is None
    assert ("sub_1", "tx_1") in state.events


async def test_single_when_event_already_exists(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """SINGLE: context "when event already exists"."""
    await create(lago)

    assert failure(await create(lago)) == {"transaction_id": ["value_already_exist"]}
    assert len(state.events) == 1


async def test_single_when_timestamp_is_not_present(lago: httpx.AsyncClient) -> None:
    """SINGLE: context "when timestamp is not present in the payload"."""
    response = await create(lago, timestamp=None)

    assert response.json()["event"]["timestamp"] >= "2025-"


async def test_single_when_timestamp_is_given_as_string(lago: httpx.AsyncClient) -> None:
    """SINGLE: context "when timestamp is given as string"."""
    response = await create(lago, timestamp="1704070923.25")

    assert response.json()["event"]["timestamp"] == "2024-01-01T01:02:03.250Z"


async def test_single_when_timestamp_is_sent_with_decimal_precision(
    lago: httpx.AsyncClient,
) -> None:
    """SINGLE: context "when timestamp is sent with decimal precision"."""
    response = await create(lago, timestamp=1693842312.344)

    assert response.json()["event"]["timestamp"] == "2023-09-04T15:45:12.344Z"


@pytest.mark.parametrize("stamp", ["1780586634.1", "1780586634.2", "1780586634.3"])
async def test_single_when_timestamps_are_repeating_floats(
    lago: httpx.AsyncClient, stamp: str
) -> None:
    """SINGLE: context "when timestamp is sent with decimal fractions represented by
    repeating floats"."""
    response = await create(lago, timestamp=stamp)

    assert response.json()["event"]["timestamp"] == f"2026-06-04T15:23:54.{stamp[-1]}00Z"


async def test_single_when_timestamp_is_given_in_a_wrong_format(lago: httpx.AsyncClient) -> None:
    """SINGLE: context "when timestamp is given in a wrong format"."""
    response = await create(lago, timestamp="2024-01-01 01:02:03 UTC")

    assert failure(response) == {"timestamp": ["invalid_format"]}


async def test_single_with_a_precise_total_amount_cents(lago: httpx.AsyncClient) -> None:
    """SINGLE: context "with a precise_total_amount_cents"."""
    response = await create(lago, precise_total_amount_cents="123.45")

    assert response.json()["event"]["precise_total_amount_cents"] == "123.45"


async def test_single_when_precise_total_amount_cents_is_not_a_decimal(
    lago: httpx.AsyncClient,
) -> None:
    """SINGLE: context "when precise_total_amount_cents is not a valid decimal value": 0."""
    response = await create(lago, precise_total_amount_cents="asdfa")

    assert response.status_code == 200
    assert response.json()["event"]["precise_total_amount_cents"] == "0.0"


# --- CONTROLLER ----------------------------------------------------------------------------


async def test_controller_post_event_returns_a_success(lago: httpx.AsyncClient) -> None:
    """CONTROLLER: POST /api/v1/events, it "returns a success"."""
    response = await create(lago, precise_total_amount_cents="123.45")

    assert response.status_code == 200
    assert response.json()["event"]["external_subscription_id"] == "sub_1"


async def test_controller_post_event_with_duplicated_transaction_id(
    lago: httpx.AsyncClient,
) -> None:
    """CONTROLLER: POST /api/v1/events, context "with duplicated transaction_id"."""
    await create(lago)

    assert (await create(lago)).status_code == 422


async def test_controller_post_event_wrong_timestamp_format(lago: httpx.AsyncClient) -> None:
    """CONTROLLER: POST /api/v1/events, context "when sending wrong format for the
    timestamp"."""
    response = await create(lago, timestamp="2024-01-01 01:02:03 +0000")

    assert response.json()["error_details"] == {"timestamp": ["invalid_format"]}


async def test_controller_post_batch_returns_a_success(lago: httpx.AsyncClient) -> None:
    """CONTROLLER: POST /api/v1/events/batch, it "returns a success"."""
    response = await batch(lago, [create_args(precise_total_amount_cents="123.45")])

    assert response.status_code == 200
    assert response.json()["events"][0]["external_subscription_id"] == "sub_1"


async def test_controller_post_batch_with_invalid_timestamp_for_one_event(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """CONTROLLER: POST /api/v1/events/batch, context "with invalid timestamp for one
    event"."""
    events = [create_args(), create_args(transaction_id="tx_2", timestamp="2024-01-01 01:02")]

    assert failure(await batch(lago, events)) == {"1": {"timestamp": ["invalid_format"]}}
    assert state.events == {}


async def test_controller_missing_event_root_is_400(lago: httpx.AsyncClient) -> None:
    """events_controller.rb ``params.require(:event)``: Rails 8's ParameterMissing text."""
    response = await lago.post("/events", json={"transaction_id": "tx"})

    assert response.status_code == 400
    assert response.json() == {
        "status": 400,
        "error": "BadRequest: param is missing or the value is empty or invalid: event",
    }


async def test_controller_get_events_returns_events(lago: httpx.AsyncClient) -> None:
    """CONTROLLER: GET /api/v1/events, context "without params"."""
    created = (await create(lago)).json()["event"]

    response = await lago.get("/events")

    assert [e["lago_id"] for e in response.json()["events"]] == [created["lago_id"]]


async def test_controller_get_events_with_pagination(lago: httpx.AsyncClient) -> None:
    """CONTROLLER: GET /api/v1/events, context "with pagination"."""
    await batch(lago, with_ids(["a", "b"]))

    response = await lago.get("/events", params={"page": 1, "per_page": 1})

    assert len(response.json()["events"]) == 1
    assert response.json()["meta"] == {
        "current_page": 1,
        "next_page": 2,
        "prev_page": None,
        "total_pages": 2,
        "total_count": 2,
    }


async def test_controller_get_events_with_code(lago: httpx.AsyncClient) -> None:
    """CONTROLLER: GET /api/v1/events, context "with code"."""
    await create(lago)
    await create(lago, transaction_id="tx_2", code="other")

    response = await lago.get("/events", params={"code": "other"})

    assert [e["transaction_id"] for e in response.json()["events"]] == ["tx_2"]


async def test_controller_get_events_with_external_subscription_id(
    lago: httpx.AsyncClient,
) -> None:
    """CONTROLLER: GET /api/v1/events, context "with external subscription id"."""
    await create(lago)
    await create(lago, external_subscription_id="sub_2")

    response = await lago.get("/events", params={"external_subscription_id": "sub_2"})

    assert [e["external_subscription_id"] for e in response.json()["events"]] == ["sub_2"]


async def test_controller_get_events_with_timestamp(lago: httpx.AsyncClient) -> None:
    """CONTROLLER: GET /api/v1/events, context "with timestamp"; newest first
    (app/queries/events_query.rb orders by timestamp desc, transaction_id)."""
    for name, day in (("early", 1), ("match_b", 3), ("match_a", 3), ("late", 9)):
        await create(lago, transaction_id=name, timestamp=1704067200 + day * 86400)

    response = await lago.get(
        "/events", params={"timestamp_from": "2024-01-03", "timestamp_to": "2024-01-05"}
    )

    assert [e["transaction_id"] for e in response.json()["events"]] == ["match_a", "match_b"]


async def test_controller_get_events_with_a_bad_date_is_invalid_date(
    lago: httpx.AsyncClient,
) -> None:
    """app/queries/base_query.rb ``parse_datetime_filter``: ``invalid_date``."""
    response = await lago.get("/events", params={"timestamp_from": "soon"})

    assert failure(response) == {"timestamp_from": ["invalid_date"]}


async def test_controller_get_event_returns_an_event(lago: httpx.AsyncClient) -> None:
    """CONTROLLER: GET /api/v1/events/:id, it "returns an event"."""
    await create(lago)

    response = await lago.get("/events/tx_1")

    assert response.json()["event"]["code"] == "sum_agg"


async def test_controller_get_event_with_special_characters(lago: httpx.AsyncClient) -> None:
    """CONTROLLER: GET /api/v1/events/:id, "when transaction_id contains special
    characters"."""
    transaction_id = "1Az()[]?#._/|-/../"
    await create(lago, transaction_id=transaction_id)

    # CGI.escapeURIComponent, as the spec sends it.
    response = await lago.get(f"/events/{quote(transaction_id, safe='')}")

    assert response.json()["event"]["transaction_id"] == transaction_id


async def test_controller_get_event_with_a_non_existing_transaction_id(
    lago: httpx.AsyncClient,
) -> None:
    """CONTROLLER: GET /api/v1/events/:id, "with a non-existing transaction_id"."""
    response = await lago.get("/events/nope")

    assert response.status_code == 404
    assert response.json()["code"] == "event_not_found"
