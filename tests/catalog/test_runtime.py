from __future__ import annotations

from pathlib import Path

import httpx

from gateway.catalog.schemas import Catalog
from gateway.catalog.service import apply_catalog
from gateway.migrations.runner import upgrade
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from tests.conftest import Gateway, make_settings, start_gateway


async def test_the_gateway_loads_the_catalog_at_start_and_pins_usage_codes_to_it(
    gateway: Gateway, catalog: Catalog
) -> None:
    lago = gateway.runtime.lago
    await apply_catalog(lago, catalog)
    await lago.call(
        "POST",
        "/billable_metrics",
        json={
            "billable_metric": {
                "name": "Legacy",
                "code": "legacy_calls",
                "aggregation_type": "count_agg",
            }
        },
    )
    await lago.call(
        "POST",
        "/subscriptions",
        json={
            "subscription": {
                "external_customer_id": "cust_1",
                "plan_code": "basic_monthly",
                "external_id": "sub_1",
            }
        },
    )
    headers = await gateway.headers("events:write")

    def event(code: str, tx: str) -> dict[str, object]:
        return {
            "event": {
                "transaction_id": tx,
                "external_subscription_id": "sub_1",
                "code": code,
                "timestamp": 1767225600,
                "properties": {"quality": "hd"},
            }
        }

    in_catalog = await gateway.client.post(
        "/api/v1/events", json=event("photo_generation", "t1"), headers=headers
    )
    only_in_lago = await gateway.client.post(
        "/api/v1/events", json=event("legacy_calls", "t2"), headers=headers
    )

    assert gateway.parts.catalog is not None
    assert gateway.parts.lookups.allowed_codes == {"photo_generation", "video_generation"}
    assert in_catalog.status_code == 200, in_catalog.text
    assert only_in_lago.status_code == 422
    assert only_in_lago.json()["error_details"] == {"code": ["billable_metric_not_found"]}


async def test_the_catalog_endpoint_lists_plans_costs_and_packs(gateway: Gateway) -> None:
    response = await gateway.client.get(
        "/gateway/catalog", headers=await gateway.headers("billing:read")
    )

    body = response.json()["catalog"]
    assert response.status_code == 200
    assert [p["code"] for p in body["token_packs"]] == ["small", "medium", "large", "mega"]
    assert body["token_packs"][1]["total_tokens"] == 275
    assert body["token_costs"]["photo"] == {
        "metric": "photo_generation",
        "tokens": 5,
        "per_units": 1,
    }
    free = next(p for p in body["plans"] if p["code"] == "free_monthly")
    assert free["allowances"]["photo_generation"] == {"included": 10, "beyond": "tokens"}
    assert free["entitlements"] == {}
    basic = next(p for p in body["plans"] if p["code"] == "basic_monthly")
    assert basic["entitlements"] == {
        "hd_photos": {"max_resolution": 2048},
        "badge": {"tier": "basic"},
    }
    assert [f["code"] for f in body["features"]] == [
        "video",
        "hd_photos",
        "pro_model",
        "badge",
        "priority",
    ]


async def test_the_embedded_emulator_gets_the_catalog_when_the_gateway_starts(
    tmp_path: Path, emulator: EmulatorState
) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade(url)
    settings = make_settings(url, lago_api_url="", lago_api_key="")
    transport = httpx.ASGITransport(app=create_emulator(emulator, api_key=settings.lago_key))

    gw, manager = await start_gateway(settings, emulator, lago_transport=transport)
    await gw.client.aclose()
    await manager.__aexit__(None, None, None)

    assert set(emulator.plans) >= {"free_monthly", "premium_yearly"}
    assert "WELCOME20" in emulator.coupons
