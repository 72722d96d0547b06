"""Holds: reserve, capture exactly once, release, expire; 402 when nothing covers a
generation; the reservation counts against the allowance and the tokens of everyone else."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.holds.service import Holds
from tests.conftest import Gateway
from tests.meters.conftest import subscribe

HOLDS = "/gateway/holds"


async def hold(
    gw: Gateway, sub: str, tx: str, code: str = "photo_generation", **fields: Any
) -> httpx.Response:
    body = {"external_subscription_id": sub, "code": code, "transaction_id": tx, **fields}
    headers = await gw.headers("events:write")
    return await gw.client.post(HOLDS, json={"hold": body}, headers=headers)


async def act(gw: Gateway, hold_id: str, action: str, body: Any = None) -> Any:
    return await gw.client.post(f"{HOLDS}/{hold_id}/{action}", json=body,
                                headers=await gw.headers("events:write"))  # fmt: skip


async def grant_tokens(gw: Gateway, customer: str, tokens: str) -> None:
    wallet = {"external_customer_id": customer, "currency": "USD", "rate_amount": "0.05",
              "name": "Tokens", "code": "tokens", "granted_credits": tokens}  # fmt: skip
    await gw.runtime.lago.call("POST", "/wallets", json={"wallet": wallet})


async def meter(gw: Gateway, sub: str, metric: str) -> tuple[float, float]:
    async with gw.runtime.database.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT sum(units) AS units, sum(held) AS held FROM usage_meters "
                    "WHERE external_subscription_id = :s AND metric = :m AND group_key = ''"
                ),
                {"s": sub, "m": metric},
            )
        ).first()
    return (0.0, 0.0) if row is None or row.units is None else (row.units, row.held)


async def outbox(gw: Gateway, sub: str) -> list[str]:
    async with gw.runtime.database.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT transaction_id FROM usage_events WHERE external_subscription_id = :s "
                "ORDER BY transaction_id"
            ),
            {"s": sub},
        )
        return [r.transaction_id for r in rows]


async def test_the_allowance_is_reserved_then_refused_with_402_when_used_up(
    metered: Gateway,
) -> None:
    sub = await subscribe(metered, "fay", "free_monthly")  # 10 photos, then tokens (none)
    ids = []
    for n in range(10):
        response = await hold(metered, sub, f"g{n}")
        assert response.status_code == 201, response.text
        body = response.json()["hold"]
        assert (body["status"], body["paid_from"], body["units"]) == ("held", "allowance", 1.0)
        ids.append(body["id"])
    assert await meter(metered, sub, "photo_generation") == (0.0, 10.0)
    refused = await hold(metered, sub, "g10")
    assert refused.status_code == 402
    assert refused.json()["code"] == "insufficient_credits"
    assert refused.json()["error_details"]["tokens_available"] == "0"
    # Released: the unit is free again; captured: it became usage.
    assert (await act(metered, ids[0], "release")).json()["hold"]["status"] == "released"
    assert (await hold(metered, sub, "g10")).status_code == 201
    captured = await act(metered, ids[1], "capture")
    assert captured.status_code == 200
    assert captured.json()["hold"]["status"] == "captured"
    assert await meter(metered, sub, "photo_generation") == (1.0, 9.0)
    assert (await hold(metered, sub, "g11")).status_code == 402


async def test_capture_accepts_the_event_exactly_once_with_final_properties(
    metered: Gateway,
) -> None:
    sub = await subscribe(metered, "gus", "premium_monthly")  # video billed in arrears
    response = await hold(metered, sub, "vid-1", "video_generation", properties={"seconds": 10})
    assert response.status_code == 201
    held = response.json()["hold"]
    assert (held["paid_from"], held["units"], held["tokens"]) == ("invoice", 10.0, "0")
    for _ in range(3):
        captured = await act(
            metered, held["id"], "capture", {"hold": {"properties": {"seconds": 12}}}
        )
        assert captured.status_code == 200
        assert captured.json()["hold"]["captured_units"] == 12.0
    assert await outbox(metered, sub) == ["vid-1"]
    assert await meter(metered, sub, "video_generation") == (12.0, 0.0)
    event = await metered.client.get(
        "/gateway/events/vid-1", headers=await metered.headers("billing:read")
    )
    assert event.json()["event"]["event"]["properties"] == {"seconds": 12}
    # Once captured it cannot be released.
    released = await act(metered, held["id"], "release")
    assert released.status_code == 409
    assert released.json()["code"] == "hold_not_held"


async def test_a_resend_answers_the_same_hold_and_a_different_one_is_refused(
    metered: Gateway,
) -> None:
    sub = await subscribe(metered, "hal")
    first = await hold(metered, sub, "same", properties={"quality": "hd"})
    again = await hold(metered, sub, "same", properties={"quality": "hd"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["hold"]["id"] == again.json()["hold"]["id"]
    other = await hold(metered, sub, "same", properties={"quality": "sd"})
    assert other.status_code == 422
    assert other.json()["error_details"] == {"transaction_id": ["value_already_exist"]}
    assert await meter(metered, sub, "photo_generation") == (0.0, 1.0)


async def test_tokens_pay_beyond_the_allowance_at_the_catalog_cost(metered: Gateway) -> None:
    sub = await subscribe(metered, "ida", "free_monthly")  # 10 photos, then 5 tokens each
    await grant_tokens(metered, "ida", "12")
    for n in range(10):
        assert (await hold(metered, sub, f"in{n}")).json()["hold"]["paid_from"] == "allowance"
    first = await hold(metered, sub, "t1")
    assert first.status_code == 201, first.text
    assert (first.json()["hold"]["paid_from"], first.json()["hold"]["tokens"]) == ("tokens", "5")
    assert (await hold(metered, sub, "t2")).json()["hold"]["tokens"] == "5"
    third = await hold(metered, sub, "t3")
    assert third.status_code == 402
    assert third.json()["error_details"] == {
        "code": "photo_generation", "tokens_needed": "5", "tokens_available": "2"}  # fmt: skip
    # Captured, the tokens are spent through the meter: 11 photos = 1 beyond = 5 tokens.
    assert (await act(metered, first.json()["hold"]["id"], "capture")).status_code == 200
    assert (await hold(metered, sub, "t3")).status_code == 402
    # Released, a hold's tokens are free again.
    second = (await hold(metered, sub, "t2")).json()["hold"]["id"]
    assert (await act(metered, second, "release")).status_code == 200
    assert (await hold(metered, sub, "t3")).json()["hold"]["tokens"] == "5"


async def test_the_customer_may_stand_for_its_one_active_subscription(metered: Gateway) -> None:
    await subscribe(metered, "jo", "premium_monthly")
    body = {"external_customer_id": "jo", "code": "photo_generation", "transaction_id": "p"}
    response = await metered.client.post(HOLDS, json={"hold": body},
                                         headers=await metered.headers("events:write"))  # fmt: skip
    assert response.status_code == 201
    assert response.json()["hold"]["external_subscription_id"] == "sub_jo"
    assert response.json()["hold"]["paid_from"] == "allowance"  # unlimited photos


@pytest.mark.parametrize(
    ("fields", "status", "details"),
    [
        ({"code": "nope"}, 422, {"code": ["billable_metric_not_found"]}),
        ({"transaction_id": " "}, 422, {"transaction_id": ["value_is_mandatory"]}),
        ({"expires_in": 0}, 422, {"expires_in": ["value_is_out_of_range"]}),
        ({"code": "video_generation"}, 422, {"properties.seconds": ["value_is_mandatory"]}),
    ],
)
async def test_bad_holds_are_refused_naming_the_field(
    metered: Gateway, fields: dict[str, Any], status: int, details: Any
) -> None:
    sub = await subscribe(metered, "kim")
    body = {"external_subscription_id": sub, "code": "photo_generation", "transaction_id": "t",
            **fields}  # fmt: skip
    response = await metered.client.post(HOLDS, json={"hold": body},
                                         headers=await metered.headers("events:write"))  # fmt: skip
    assert response.status_code == status, response.text
    assert response.json()["error_details"] == details
    unknown = await hold(metered, "sub_nobody", "t")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "subscription_not_found")


async def test_an_unclaimed_hold_expires_and_gives_its_reservation_back(metered: Gateway) -> None:
    sub = await subscribe(metered, "lou", "free_monthly")
    response = await hold(metered, sub, "late", expires_in=1)
    hold_id = response.json()["hold"]["id"]
    await asyncio.sleep(1.1)
    # Past expires_at a capture is refused even before the worker's pass.
    refused = await act(metered, hold_id, "capture")
    assert (refused.status_code, refused.json()["error_details"]) == (409, {"status": "expired"})
    parts = metered.parts
    holds = Holds(parts.runtime.database, parts.runtime.lago, parts.meters, parts.lookups,
                  parts.catalog)  # fmt: skip
    assert await holds.expire_due() == 1
    assert await holds.expire_due() == 0
    got = await metered.client.get(
        f"{HOLDS}/{hold_id}", headers=await metered.headers("events:write")
    )
    assert got.json()["hold"]["status"] == "expired"
    assert await meter(metered, sub, "photo_generation") == (0.0, 0.0)
    assert await outbox(metered, sub) == []


async def test_every_change_is_audited_and_relayed(metered: Gateway) -> None:
    sub = await subscribe(metered, "max", "premium_monthly")
    a = (await hold(metered, sub, "a")).json()["hold"]["id"]
    b = (await hold(metered, sub, "b")).json()["hold"]["id"]
    await act(metered, a, "capture")
    await act(metered, b, "release")
    audit = "SELECT action, target FROM audit_entries WHERE action LIKE 'holds.%' ORDER BY id"
    relay = "SELECT type FROM relay_messages WHERE type LIKE 'hold.%' ORDER BY type"
    async with metered.runtime.database.engine.connect() as conn:
        actions = [tuple(row) for row in await conn.execute(text(audit))]
        types = [row.type for row in await conn.execute(text(relay))]
    assert actions == [
        ("holds.create", a),
        ("holds.create", b),
        ("holds.capture", a),
        ("holds.release", b),
    ]
    assert types == ["hold.captured", "hold.created", "hold.created", "hold.released"]


async def test_a_hold_the_plan_does_not_entitle_is_refused_with_403(metered: Gateway) -> None:
    sub = await subscribe(metered, "nia", "basic_monthly")  # video only on Premium
    response = await hold(metered, sub, "v", "video_generation", properties={"seconds": 3})
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "feature_not_entitled"
    assert body["error_details"]["plan_code"] == "basic_monthly"
    assert await meter(metered, sub, "video_generation") == (0.0, 0.0)


async def test_balance_shows_holds_and_the_premium_grant(metered: Gateway) -> None:
    sub = await subscribe(metered, "oz", "premium_monthly")
    assert (await hold(metered, sub, "p1")).status_code == 201
    response = await metered.client.get(
        "/gateway/customers/oz/balance", headers=await metered.headers("billing:read")
    )
    balance = response.json()["balance"]
    assert balance["usage"]["photo_generation"]["held"] == 1
    # Subscribing through the gateway gave the token wallet the plan's weekly grant.
    grant = balance["next_grant"]
    assert (grant["tokens"], grant["interval"], grant["source"]) == (500, "weekly", "lago")


async def test_a_subscription_s_entitlement_overrides_decide_its_holds(metered: Gateway) -> None:
    sub = await subscribe(metered, "pen", "basic_monthly")
    writer = await metered.headers("billing:write")
    path = f"/api/v1/subscriptions/{sub}/entitlements"
    hd = {"properties": {"quality": "hd"}}
    assert (await hold(metered, sub, "hd-1", **hd)).status_code == 201  # Basic has HD
    video = {"properties": {"seconds": 2}}
    assert (await hold(metered, sub, "v-1", "video_generation", **video)).status_code == 403

    extra = {"entitlements": {"video": {"max_clip_seconds": 15}}}
    assert (await metered.client.patch(path, json=extra, headers=writer)).status_code == 200
    removed = await metered.client.delete(f"{path}/hd_photos", headers=writer)
    assert removed.status_code == 200

    # Video is entitled now (no tokens, so not covered: 402); HD photos are not.
    assert (await hold(metered, sub, "v-2", "video_generation", **video)).status_code == 402
    refused = await hold(metered, sub, "hd-2", **hd)
    assert (refused.status_code, refused.json()["error_details"]["feature"]) == (403, "hd_photos")
    balance = await metered.client.get(
        "/gateway/customers/pen/balance", headers=await metered.headers("billing:read")
    )
    features = balance.json()["balance"]["features"]
    assert features["video"] == {"max_clip_seconds": 15}
    assert "hd_photos" not in features


async def test_a_hold_beyond_a_capped_privilege_is_refused_with_403(metered: Gateway) -> None:
    sub = await subscribe(metered, "cap", "premium_monthly")  # video: max_clip_seconds 60
    long = await hold(metered, sub, "v-long", "video_generation", properties={"seconds": 61})
    assert long.status_code == 403
    body = long.json()
    assert body["code"] == "privilege_exceeded"
    assert body["error_details"] == {
        "feature": "video", "privilege": "max_clip_seconds", "limit": 60,
        "plan_code": "premium_monthly", "code": "video_generation", "property": {"seconds": 61},
    }  # fmt: skip
    assert await meter(metered, sub, "video_generation") == (0.0, 0.0)

    ok = await hold(metered, sub, "v-ok", "video_generation", properties={"seconds": 60})
    assert ok.status_code == 201, ok.text
    assert ok.json()["hold"]["paid_from"] == "invoice"
    # Usage that happened is billed: a capture's final seconds are not capped.
    captured = await act(metered, ok.json()["hold"]["id"], "capture",
                         {"hold": {"properties": {"seconds": 75}}})  # fmt: skip
    assert captured.status_code == 200
    assert captured.json()["hold"]["captured_units"] == 75
