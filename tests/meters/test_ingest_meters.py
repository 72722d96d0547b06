"""Every accepted event adds to its subscription's meters in the transaction that accepts it:
once (a resend adds nothing), never for a refused request, on both write paths."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

from gateway.meters import store
from gateway.meters.metering import Delta
from tests.conftest import Gateway
from tests.meters.conftest import subscribe


def photo(sub: str, tx: str, quality: str = "sd") -> dict[str, Any]:
    return {"transaction_id": tx, "external_subscription_id": sub, "code": "photo_generation",
            "properties": {"quality": quality}}  # fmt: skip


def video(sub: str, tx: str, seconds: float) -> dict[str, Any]:
    return {"transaction_id": tx, "external_subscription_id": sub, "code": "video_generation",
            "properties": {"seconds": seconds}}  # fmt: skip


async def meters(gw: Gateway, sub: str) -> dict[tuple[str, str], tuple[float, int, float]]:
    async with gw.runtime.database.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT metric, group_key, sum(units) AS units, sum(events) AS events, "
                "sum(held) AS held FROM usage_meters WHERE external_subscription_id = :s "
                "GROUP BY metric, group_key"
            ),
            {"s": sub},
        )
        return {(r.metric, r.group_key): (r.units, r.events, r.held) for r in rows}


async def post(gw: Gateway, events: list[dict[str, Any]]) -> int:
    headers = await gw.headers("events:write")
    response = await gw.client.post("/api/v1/events/batch", json={"events": events},
                                    headers=headers)  # fmt: skip
    return response.status_code


async def test_events_add_to_their_meters_with_filter_breakdown(metered: Gateway) -> None:
    sub = await subscribe(metered, "ana")
    assert await post(metered, [photo(sub, "p1", "hd"), photo(sub, "p2", "hd"),
                                photo(sub, "p3"), video(sub, "v1", 12.5)]) == 200  # fmt: skip
    assert await meters(metered, sub) == {
        ("photo_generation", ""): (3.0, 3, 0.0),
        ("photo_generation", "quality=hd"): (2.0, 2, 0.0),
        ("photo_generation", "quality=sd"): (1.0, 1, 0.0),
        ("video_generation", ""): (12.5, 1, 0.0),
    }


async def test_a_resend_adds_nothing_and_new_events_beside_it_add_once(metered: Gateway) -> None:
    sub = await subscribe(metered, "ben")
    assert await post(metered, [photo(sub, "p1"), video(sub, "v1", 4)]) == 200
    # A resend of p1 beside new events: the transaction path (some keys exist already).
    assert await post(metered, [photo(sub, "p1"), photo(sub, "p2"), video(sub, "v2", 6)]) == 200
    assert await post(metered, [photo(sub, "p1"), photo(sub, "p2")]) == 200
    found = await meters(metered, sub)
    assert found[("photo_generation", "")] == (2.0, 2, 0.0)
    assert found[("video_generation", "")] == (10.0, 2, 0.0)


async def test_a_refused_request_adds_nothing(metered: Gateway) -> None:
    sub = await subscribe(metered, "cy")
    assert await post(metered, [video(sub, "v1", 4)]) == 200
    # v1 again with other seconds is a clash: the whole request is refused, v2 included.
    assert await post(metered, [video(sub, "v1", 5), video(sub, "v2", 7)]) == 422
    assert await meters(metered, sub) == {("video_generation", ""): (4.0, 1, 0.0)}


async def test_events_of_a_subscription_without_known_terms_are_accepted_unmetered(
    metered: Gateway,
) -> None:
    lago = metered.runtime.lago
    await lago.call("POST", "/customers", json={"customer": {"external_id": "dee"}})
    subscription = {"external_customer_id": "dee", "plan_code": "basic_monthly",
                    "external_id": "sub_dee"}  # fmt: skip
    await lago.call("POST", "/subscriptions", json={"subscription": subscription})
    assert await post(metered, [photo("sub_dee", "p1")]) == 200
    assert await meters(metered, "sub_dee") == {}


def _delta(tx: str, aggregation: str, value: float, at: float, unique: str | None = None) -> Delta:
    return Delta("sub", tx, "m_" + aggregation, 1000.0, "", aggregation, value, at, unique)


AGGREGATED = [
    _delta("a", "max", 3, 10), _delta("b", "max", 9, 11), _delta("c", "max", 4, 12),
    _delta("a", "latest", 3, 10), _delta("b", "latest", 9, 30), _delta("c", "latest", 4, 20),
    _delta("a", "unique", 1, 10, "x"), _delta("b", "unique", 1, 11, "y"),
    _delta("c", "unique", 1, 12, "x"),
    _delta("a", "sum", 1.5, 10), _delta("b", "sum", 2.25, 11),
    _delta("a", "count", 1, 10), _delta("b", "count", 1, 11),
]  # fmt: skip
EXPECTED = {"m_max": 9.0, "m_latest": 9.0, "m_unique": 2.0, "m_sum": 3.75, "m_count": 2.0}


async def _units(conn: Any) -> dict[str, float]:
    rows = await conn.execute(text("SELECT metric, units FROM usage_meters"))
    return {r.metric: r.units for r in rows}


async def test_each_aggregation_as_lago_aggregates_it_in_one_write_and_across_writes(
    database: Any,
) -> None:
    async with database.engine.begin() as conn:
        await store.apply(conn, AGGREGATED, time.time())
    async with database.engine.connect() as conn:
        assert await _units(conn) == EXPECTED
    # Again one event at a time (existing rows): the same meters, counted twice over.
    async with database.engine.begin() as conn:
        await conn.execute(text("DELETE FROM usage_meters"))
        await conn.execute(text("DELETE FROM usage_meter_values"))
    for delta in AGGREGATED + AGGREGATED:
        async with database.engine.begin() as conn:
            await store.apply(conn, [delta], time.time())
    async with database.engine.connect() as conn:
        doubled = {**EXPECTED, "m_sum": 7.5, "m_count": 4.0}
        assert await _units(conn) == doubled


async def test_the_postgresql_one_statement_path_aggregates_as_apply_does(
    backend: str, database: Any
) -> None:
    if backend != "postgres":
        pytest.skip("the one-statement path is PostgreSQL's")
    from gateway.db import DirectConnection
    from gateway.usage.store import OutboxRow, store_new_pg

    direct = DirectConnection(database.url)
    try:
        for round_ in ("1", "2"):
            rows = [OutboxRow("sub", tx + round_, "m", "{}", "f") for tx in "abc"]
            assert await store_new_pg(await direct.get(), rows, [], time.time(), AGGREGATED)
            async with database.engine.connect() as conn:
                units = await _units(conn)
            if round_ == "1":
                assert units == EXPECTED
        assert units == {**EXPECTED, "m_sum": 7.5, "m_count": 4.0}
    finally:
        await direct.release()


async def test_writers_add_to_their_own_shards_and_reads_combine_them(database: Any) -> None:
    photo = [_delta("a", "count", 1, 10), _delta("b", "count", 1, 11)]
    top = [_delta("a", "max", 3, 10), _delta("b", "max", 9, 11)]
    last = [_delta("a", "latest", 3, 30), _delta("b", "latest", 9, 20)]
    async with database.engine.begin() as conn:
        for shard, deltas in enumerate(zip(photo, top, last, strict=True), start=1):
            await store.apply(conn, list(deltas), time.time(), shard)
        await store.add_held(conn, ("sub", "m_count", 1000.0, ""), "count", 2.0, time.time())
    async with database.engine.connect() as conn:
        rows = await conn.execute(text("SELECT count(*) FROM usage_meters"))
        assert rows.scalar() == 7  # two shards each, and the holds' shard of m_count
        combined = {r["metric"]: r for r in await store.meters_of(conn, "sub", 1000.0)}
    assert (combined["m_count"]["units"], combined["m_count"]["held"]) == (2.0, 2.0)
    assert combined["m_count"]["events"] == 2
    assert combined["m_max"]["units"] == 9.0
    assert combined["m_latest"]["units"] == 3.0  # the event at 30 is the latest


async def test_a_subscription_first_seen_on_a_balance_read_is_seeded_from_lago(
    metered: Gateway,
) -> None:
    """Its earlier events were not metered: the first read sets the meter to Lago's usage
    plus the events Lago does not have yet (pending in the outbox), without waiting for the
    reconciliation's second pass."""
    lago = metered.runtime.lago
    await lago.call("POST", "/customers", json={"customer": {"external_id": "eve"}})
    subscription = {"external_customer_id": "eve", "plan_code": "basic_monthly",
                    "external_id": "sub_eve"}  # fmt: skip
    await lago.call("POST", "/subscriptions", json={"subscription": subscription})
    assert await post(metered, [photo("sub_eve", "p1"), photo("sub_eve", "p2", "hd")]) == 200
    around = {**photo("sub_eve", "direct-1"), "timestamp": int(time.time())}  # reached Lago alone
    await lago.call("POST", "/events", json={"event": around})
    assert await meters(metered, "sub_eve") == {}

    response = await metered.client.get(
        "/gateway/customers/eve/balance", headers=await metered.headers("billing:read")
    )
    assert response.status_code == 200, response.text
    usage = response.json()["balance"]["usage"]["photo_generation"]
    assert (usage["units"], usage["included"], usage["remaining_included"]) == (3, 200, 197)
    assert (await meters(metered, "sub_eve"))[("photo_generation", "")][0] == 3.0
