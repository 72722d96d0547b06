"""Usage and token alerts: a threshold reached raises one relay message, once per period (or,
for tokens, once until the balance is back), whatever passes, restarts or second workers
follow; the job's pass after the event raises it, and a running job within 2 s."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from gateway.catalog.loader import CatalogError, load_catalog
from gateway.catalog.schemas import Catalog
from gateway.catalog.service import apply_catalog
from gateway.meters.alerts import AlertWatch
from gateway.meters.metering import meter_rules
from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway
from tests.meters.conftest import CATALOG_FILE, subscribe

USAGE = "usage.threshold_reached"
TOKENS = "tokens.low"


def watch(gw: Gateway) -> AlertWatch:
    return AlertWatch(gw.runtime.database, lambda: gw.parts.catalog)


async def photos(gw: Gateway, sub: str, first: int, count: int, at: float | None = None) -> None:
    events = []
    for n in range(first, first + count):
        event: dict[str, Any] = {
            "transaction_id": f"{sub}-p{n}",
            "external_subscription_id": sub,
            "code": "photo_generation",
            "properties": {"quality": "sd"},
        }
        if at is not None:
            event["timestamp"] = int(at)
        events.append(event)
    response = await gw.client.post("/api/v1/events/batch", json={"events": events},
                                    headers=await gw.headers("events:write"))  # fmt: skip
    assert response.status_code == 200, response.text


async def messages(gw: Gateway, kind: str) -> list[dict[str, Any]]:
    async with gw.runtime.database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT body FROM relay_messages WHERE type = :t ORDER BY seq"), {"t": kind}
        )
        return [json.loads(row.body) for row in rows]


async def test_80_then_100_percent_of_free_photos_raise_one_message_each(metered: Gateway) -> None:
    sub = await subscribe(metered, "ada", "free_monthly")  # 10 photos included
    job = watch(metered)
    await photos(metered, sub, 0, 7)
    assert await job.run_pass() == 0
    await photos(metered, sub, 7, 1)  # 8 of 10: 80 %
    assert await job.run_pass() == 1
    await photos(metered, sub, 8, 1)
    assert await job.run_pass() == 0
    await photos(metered, sub, 9, 2)  # 11 of 10: 100 % (and beyond)
    assert await job.run_pass() == 1
    await photos(metered, sub, 11, 3)
    assert await job.run_pass() == 0
    assert await job.run_pass() == 0
    assert await watch(metered).run_pass() == 0, "a restarted job raises nothing again"

    sent = await messages(metered, USAGE)
    assert [m["data"]["threshold_percent"] for m in sent] == [80, 100]
    first = sent[0]
    assert first["source"] == "gateway"
    data = first["data"]
    assert {k: data[k] for k in ("external_subscription_id", "external_customer_id", "plan_code",
                                 "metric", "units", "included")} == {
        "external_subscription_id": sub, "external_customer_id": "ada",
        "plan_code": "free_monthly", "metric": "photo_generation", "units": 8, "included": 10,
    }  # fmt: skip
    assert sent[1]["data"]["units"] == 11
    start = datetime.fromisoformat(data["period_started_at"].replace("Z", "+00:00"))
    now = datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # The calendar month, or (Lago's first period) from the subscription's start today.
    assert month <= start <= now and (start == month or start.date() == now.date())
    async with metered.runtime.database.engine.connect() as conn:
        audit = await conn.execute(
            text("SELECT count(*) FROM audit_entries WHERE action = 'meters.alert.usage'")
        )
        assert audit.scalar() == 2


async def test_a_video_included_zero_or_unlimited_photos_raise_nothing(metered: Gateway) -> None:
    sub = await subscribe(metered, "bo", "premium_monthly")  # photos unlimited
    await photos(metered, sub, 0, 30)
    assert await watch(metered).run_pass() == 0
    assert await messages(metered, USAGE) == []


async def test_two_workers_at_once_raise_each_alert_once(metered: Gateway) -> None:
    sub = await subscribe(metered, "cal", "free_monthly")
    await photos(metered, sub, 0, 10)
    raised = await asyncio.gather(*(watch(metered).run_pass() for _ in range(4)))
    assert sum(raised) == 2
    assert len(await messages(metered, USAGE)) == 2


async def test_a_new_billing_period_alerts_again(metered: Gateway) -> None:
    sub = await subscribe(metered, "dee", "free_monthly")
    today = datetime.now(UTC)
    last_month = today.replace(day=1, hour=12, minute=0, second=0, microsecond=0) - timedelta(
        days=10
    )
    subscribed = (last_month - timedelta(days=40)).timestamp()
    async with metered.runtime.database.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE meter_subscriptions SET subscription_at = :at, started_at = :at, "
                "period_start = NULL, period_end = NULL WHERE external_id = :s"
            ),
            {"at": subscribed, "s": sub},
        )
    metered.parts.meters.forget(sub)
    job = watch(metered)
    await photos(metered, sub, 0, 8, at=last_month.timestamp())
    assert await job.run_pass(now=last_month.timestamp()) == 1
    await photos(metered, sub, 8, 8)  # this month
    assert await job.run_pass() == 1
    assert await job.run_pass() == 0
    sent = await messages(metered, USAGE)
    assert [(m["data"]["threshold_percent"], m["data"]["units"]) for m in sent] == [(80, 8)] * 2
    assert sent[0]["data"]["period_started_at"] != sent[1]["data"]["period_started_at"]
    assert sent[0]["id"] != sent[1]["id"]


async def account(gw: Gateway, customer: str, credits: str) -> None:
    """The customer's token account as a wallet read leaves it."""
    now = time.time()
    async with gw.runtime.database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO meter_accounts (external_customer_id, credits, held_tokens, "
                "lago_wallet_id, wallet_read_at, touched_at) "
                "VALUES (:c, :cr, '0', 'w_1', :now, :now) ON CONFLICT (external_customer_id) "
                "DO UPDATE SET credits = excluded.credits, wallet_read_at = excluded.wallet_read_at"
            ),
            {"c": customer, "cr": credits, "now": now},
        )


async def test_tokens_below_50_raise_tokens_low_once_until_topped_up(metered: Gateway) -> None:
    sub = await subscribe(metered, "eve", "free_monthly")  # beyond 10 photos: 5 tokens each
    await account(metered, "eve", "60")
    job = watch(metered)
    assert await job.run_pass() == 0
    await photos(metered, sub, 0, 12)  # 2 beyond: 10 tokens, 50 left (not below 50)
    await job.run_pass()
    assert await messages(metered, TOKENS) == []
    await photos(metered, sub, 12, 1)  # 45 left
    await job.run_pass()
    await photos(metered, sub, 13, 1)  # 40 left
    await job.run_pass()
    assert await job.run_pass() == 0
    sent = await messages(metered, TOKENS)
    assert [m["data"] for m in sent] == [
        {"external_customer_id": "eve", "tokens_available": "45", "threshold": 50,
         "credits": "60", "held_tokens": "0"}
    ]  # fmt: skip
    # A top-up brings it back: the next fall below 50 is told again.
    await account(metered, "eve", "100")  # 100 - 20 spent = 80
    assert await job.run_pass() == 0
    await photos(metered, sub, 14, 7)  # 100 - 55 = 45
    assert await job.run_pass() == 1
    assert [m["data"]["tokens_available"] for m in await messages(metered, TOKENS)] == ["45", "45"]


async def test_a_customer_without_a_token_wallet_gets_no_tokens_low(metered: Gateway) -> None:
    sub = await subscribe(metered, "fin", "free_monthly")
    async with metered.runtime.database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO meter_accounts (external_customer_id, credits, held_tokens, "
                "touched_at) VALUES ('fin', '0', '0', :now)"
            ),
            {"now": time.time()},
        )
    await photos(metered, sub, 0, 3)
    await watch(metered).run_pass()
    assert await messages(metered, TOKENS) == []


async def test_a_plans_own_thresholds_replace_the_catalogs(metered: Gateway) -> None:
    catalog = metered.parts.catalog
    assert catalog is not None
    data = catalog.model_dump(mode="json", exclude_unset=True)
    plans = data["plans"]
    free = next(p for p in plans if p["code"] == "free_monthly")
    free["alerts"] = {"metrics": {"photo_generation": [50]}}
    metered.parts.catalog = Catalog.model_validate(data)
    sub = await subscribe(metered, "gil", "free_monthly")
    await photos(metered, sub, 0, 9)
    assert await watch(metered).run_pass() == 1
    assert [m["data"]["threshold_percent"] for m in await messages(metered, USAGE)] == [50]


def test_the_alerts_section_is_validated_and_never_sent_to_lago(tmp_path: Any) -> None:
    catalog = load_catalog(CATALOG_FILE)
    assert catalog.alerts.usage_percent == [80, 100]
    assert catalog.alerts.tokens_below == [50]
    free = catalog.plan("free_monthly")
    assert free is not None
    assert catalog.alerts.usage_thresholds(free, "photo_generation") == [80, 100]
    source = CATALOG_FILE.read_text()
    bad = source.replace("usage_percent: [80, 100]", "usage_percent: [80, 80, 0]")
    path = tmp_path / "catalog.yaml"
    path.write_text(bad)
    with pytest.raises(CatalogError) as found:
        load_catalog(path)
    assert "alerts.usage_percent" in str(found.value)
    unknown = source.replace(
        "    entitlements: {}   #", "    alerts: {metrics: {audio: [50]}}\n    entitlements: {}   #"
    )
    path.write_text(unknown)
    with pytest.raises(CatalogError) as found:
        load_catalog(path)
    assert "plans[0].alerts.metrics.audio" in str(found.value)
    with_plan_alerts = source.replace(
        "    entitlements: {}   #", "    alerts: {usage_percent: [90]}\n    entitlements: {}   #"
    )
    path.write_text(with_plan_alerts)
    plan = load_catalog(path).plan("free_monthly")
    assert plan is not None and plan.alerts is not None
    assert "alerts" not in plan.model_dump(mode="json")


@pytest.fixture
async def running(database_url: str, emulator: EmulatorState) -> AsyncIterator[Gateway]:
    """The gateway with its workers running and the shipped catalog."""
    gw, manager = await start_gateway(make_settings(database_url), emulator, run_workers=True)
    catalog = load_catalog(CATALOG_FILE)
    gw.parts.catalog = catalog
    gw.parts.meters.rules = meter_rules(catalog)
    await apply_catalog(gw.runtime.lago, catalog)
    try:
        yield gw
    finally:
        await gw.client.aclose()
        await manager.__aexit__(None, None, None)


async def test_the_running_job_raises_the_alert_within_two_seconds(running: Gateway) -> None:
    sub = await subscribe(running, "hal", "free_monthly")
    await photos(running, sub, 0, 7)
    await asyncio.sleep(0.6)
    sent_at = time.monotonic()
    await photos(running, sub, 7, 1)
    while not await messages(running, USAGE):
        assert time.monotonic() - sent_at < 2.0, "no usage.threshold_reached within 2 s"
        await asyncio.sleep(0.05)
    took = time.monotonic() - sent_at
    assert took < 2.0
    print(f"usage.threshold_reached stored {took:.3f} s after the event was accepted")
