from __future__ import annotations

from tests.conftest import Gateway


async def _seed(gw: Gateway, subs: tuple[str, ...] = ("sub_1",)) -> None:
    lago = gw.emulator
    client = gw.runtime.lago
    await client.call(
        "POST",
        "/billable_metrics",
        json={
            "billable_metric": {
                "name": "Photos",
                "code": "photo_generation",
                "aggregation_type": "count_agg",
            }
        },
    )
    await client.call(
        "POST",
        "/plans",
        json={
            "plan": {
                "name": "Basic",
                "code": "basic",
                "interval": "monthly",
                "amount_cents": 999,
                "amount_currency": "USD",
                "pay_in_advance": False,
                "charges": [],
            }
        },
    )
    for sub in subs:
        await client.call(
            "POST",
            "/subscriptions",
            json={
                "subscription": {
                    "external_customer_id": f"cust_{sub}",
                    "plan_code": "basic",
                    "external_id": sub,
                }
            },
        )
    assert lago.subscriptions


async def test_single_event_is_stored_then_forwarded_once(gateway: Gateway) -> None:
    await _seed(gateway)
    headers = await gateway.headers("events:write")
    body = {
        "event": {
            "transaction_id": "tx_1",
            "external_subscription_id": "sub_1",
            "code": "photo_generation",
            "timestamp": 1756684800,
            "properties": {"q": "hd"},
        }
    }
    response = await gateway.client.post("/api/v1/events", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["event"]["transaction_id"] == "tx_1"
    again = await gateway.client.post("/api/v1/events", json=body, headers=headers)
    assert again.status_code == 200
    body["event"]["properties"] = {"q": "sd"}
    clash = await gateway.client.post("/api/v1/events", json=body, headers=headers)
    assert clash.status_code == 422
    assert clash.json()["error_details"] == {"transaction_id": ["value_already_exist"]}
    from gateway.usage.forwarder import Forwarder

    assert await Forwarder(gateway.runtime, gateway.parts.lookups).forward_due(100) == 1
    assert ("sub_1", "tx_1") in gateway.emulator.events
    reader = await gateway.headers("billing:read")
    read = await gateway.client.get("/gateway/events/tx_1", headers=reader)
    assert read.json()["event"]["status"] == "forwarded"
