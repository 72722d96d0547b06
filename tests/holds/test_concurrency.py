"""Holds are race-free: concurrent holds through two gateways on one database never share
the last included units or the last tokens."""

from __future__ import annotations

import asyncio
from collections import Counter

from gateway.catalog.loader import load_catalog
from gateway.catalog.service import apply_catalog
from gateway.meters.metering import meter_rules
from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway
from tests.meters.conftest import CATALOG_FILE, subscribe


async def test_fifty_concurrent_holds_for_the_last_ten_units_give_ten_holds(
    database_url: str, emulator: EmulatorState
) -> None:
    catalog = load_catalog(CATALOG_FILE)
    started = [await start_gateway(make_settings(database_url), emulator) for _ in range(2)]
    gateways: list[Gateway] = [gw for gw, _ in started]
    try:
        for gw in gateways:
            gw.parts.catalog = catalog
            gw.parts.meters.rules = meter_rules(catalog)
        await apply_catalog(gateways[0].runtime.lago, catalog)
        sub = await subscribe(gateways[0], "zed", "free_monthly")  # 10 photos, no tokens
        headers = await gateways[0].headers("events:write")

        async def one(n: int) -> int:
            gw = gateways[n % 2]
            body = {"external_subscription_id": sub, "code": "photo_generation",
                    "transaction_id": f"gen-{n}"}  # fmt: skip
            response = await gw.client.post("/gateway/holds", json={"hold": body}, headers=headers)
            return response.status_code

        statuses = Counter(await asyncio.gather(*(one(n) for n in range(50))))
        assert statuses == {201: 10, 402: 40}
    finally:
        for gw, manager in started:
            await gw.client.aclose()
            await manager.__aexit__(None, None, None)
