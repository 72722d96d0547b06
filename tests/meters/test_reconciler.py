"""Meters agree with Lago: a confirmed drift is corrected toward Lago, events Lago does not
have yet are not drift, and token accounts read stale wallets again."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

from gateway.meters import reconciler as meters_reconciler
from gateway.meters.reconciler import METER_DRIFT, Reconciler
from gateway.packs import handlers
from gateway.packs.account import refresh_account, refresh_stale_accounts
from tests.conftest import Gateway
from tests.meters.conftest import subscribe


def photos(sub: str, prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "transaction_id": f"{prefix}{i}",
            "external_subscription_id": sub,
            "code": "photo_generation",
            "timestamp": int(time.time()),
        }
        for i in range(count)
    ]


async def units(gw: Gateway, sub: str) -> float | None:
    async with gw.runtime.database.engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT sum(units) FROM usage_meters WHERE external_subscription_id = :s "
                    "AND metric = 'photo_generation' AND group_key = ''"
                ),
                {"s": sub},
            )
        ).scalar()


def drifts() -> float:
    return METER_DRIFT.labels(metric="photo_generation")._value.get()


async def test_a_subscription_learned_on_first_sight_is_seeded_from_lago_at_once(
    metered: Gateway,
) -> None:
    lago = metered.runtime.lago
    await lago.call("POST", "/customers", json={"customer": {"external_id": "oli"}})
    subscription = {"external_customer_id": "oli", "plan_code": "basic_monthly",
                    "external_id": "sub_oli"}  # fmt: skip
    await lago.call("POST", "/subscriptions", json={"subscription": subscription})
    await lago.call("POST", "/events/batch", json={"events": photos("sub_oli", "l", 3)})
    before = drifts()

    await metered.parts.meters.learn("sub_oli")  # a hold or balance read names it first

    assert await units(metered, "sub_oli") == 3.0
    assert drifts() == before, "history seeded, not drift"
    reconciler = Reconciler(metered.parts.meters, lago)
    assert (await reconciler.run_once())["drift"] == 0
    assert await units(metered, "sub_oli") == 3.0


async def test_a_subscription_learned_late_is_seeded_from_lago_on_the_second_pass(
    metered: Gateway,
) -> None:
    lago = metered.runtime.lago
    await lago.call("POST", "/customers", json={"customer": {"external_id": "ola"}})
    subscription = {"external_customer_id": "ola", "plan_code": "basic_monthly",
                    "external_id": "sub_ola"}  # fmt: skip
    created = await lago.call("POST", "/subscriptions", json={"subscription": subscription})
    await lago.call("POST", "/events/batch", json={"events": photos("sub_ola", "l", 3)})
    # Terms from a webhook's subscription object: stored, not seeded.
    await metered.parts.meters.adopt(created["subscription"])
    reconciler = Reconciler(metered.parts.meters, lago)
    before = drifts()

    first = await reconciler.run_once()
    assert first["checked"] == 1
    assert await units(metered, "sub_ola") is None  # one sighting is not yet drift
    await reconciler.run_once()

    assert await units(metered, "sub_ola") == 3.0
    assert drifts() == before + 1
    await reconciler.run_once()  # agreed now: nothing more
    assert drifts() == before + 1


async def test_events_lago_does_not_have_yet_are_not_drift(metered: Gateway) -> None:
    sub = await subscribe(metered, "pia")
    headers = await metered.headers("events:write")
    response = await metered.client.post(
        "/api/v1/events/batch", json={"events": photos(sub, "p", 4)}, headers=headers
    )
    assert response.status_code == 200  # pending in the outbox: workers are off
    reconciler = Reconciler(metered.parts.meters, metered.runtime.lago)
    before = drifts()
    for _ in range(3):
        await reconciler.run_once()
    assert await units(metered, sub) == 4.0
    assert drifts() == before


async def test_while_the_outbox_holds_a_backlog_nothing_is_compared(
    metered: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = await subscribe(metered, "quin")
    headers = await metered.headers("events:write")
    await metered.client.post(
        "/api/v1/events/batch", json={"events": photos(sub, "q", 2)}, headers=headers
    )
    monkeypatch.setattr(meters_reconciler, "MAX_PENDING", 1)
    done = await Reconciler(metered.parts.meters, metered.runtime.lago).run_once()
    assert done == {"checked": 0, "drift": 0, "skipped": 0}


async def test_stale_wallets_and_wallet_webhooks_make_the_account_read_lago_again(
    metered: Gateway,
) -> None:
    await subscribe(metered, "rae", "free_monthly")
    runtime, catalog = metered.runtime, metered.parts.catalog
    wallet = {"external_customer_id": "rae", "currency": "USD", "rate_amount": "0.05",
              "name": "Tokens", "code": "tokens", "granted_credits": "10"}  # fmt: skip
    created = (await runtime.lago.call("POST", "/wallets", json={"wallet": wallet}))["wallet"]
    await refresh_account(runtime.database, runtime.lago, catalog, "rae")
    top_up = {"wallet_id": created["lago_id"], "granted_credits": "5"}
    await runtime.lago.call("POST", "/wallet_transactions", json={"wallet_transaction": top_up})

    async def credits() -> str:
        async with runtime.database.engine.connect() as conn:
            return str(
                (
                    await conn.execute(
                        text(
                            "SELECT credits FROM meter_accounts WHERE external_customer_id = 'rae'"
                        )
                    )
                ).scalar()
            )

    assert await credits() == "10.0"
    assert await refresh_stale_accounts(runtime.database, runtime.lago, catalog, 3600) == 0
    assert await refresh_stale_accounts(runtime.database, runtime.lago, catalog, 0.0) == 1
    assert await credits() == "15.0"
    await runtime.lago.call("POST", "/wallet_transactions", json={"wallet_transaction": top_up})
    payload = {"wallet_transaction": {"lago_wallet_id": created["lago_id"], "status": "settled"}}
    await handlers.on_wallet_change(runtime, None, payload)  # type: ignore[arg-type]
    assert await credits() == "20.0"
