"""Current usage: the subscription may be omitted when the customer has exactly one."""

from __future__ import annotations

from tests.billing.support import BASIC, ok, seed_catalog
from tests.conftest import Gateway


async def _subscribe(gw: Gateway, customer: str, sub: str) -> None:
    headers = await gw.headers("billing:write")
    body = {
        "subscription": {"external_customer_id": customer, "plan_code": BASIC, "external_id": sub}
    }
    ok(await gw.client.post("/api/v1/subscriptions", json=body, headers=headers))


def _events(gw: Gateway, sub: str, count: int) -> None:
    for n in range(count):
        gw.emulator.events[(sub, f"tx_{n}")] = {
            "transaction_id": f"tx_{n}",
            "external_subscription_id": sub,
            "code": "photo_generation",
            "timestamp": gw.emulator.now().isoformat(),
            "properties": {},
        }


async def test_usage_of_the_only_active_subscription_when_none_is_named(gateway: Gateway) -> None:
    await seed_catalog(gateway)
    await _subscribe(gateway, "acme", "sub_acme")
    _events(gateway, "sub_acme", 4)
    reader = await gateway.headers("billing:read")
    implied = ok(await gateway.client.get("/api/v1/customers/acme/current_usage", headers=reader))
    named = ok(
        await gateway.client.get(
            "/api/v1/customers/acme/current_usage?external_subscription_id=sub_acme", headers=reader
        )
    )
    assert implied == named
    [charge] = implied["customer_usage"]["charges_usage"]
    assert (charge["events_count"], charge["amount_cents"]) == (4, 20)
    empty = ok(
        await gateway.client.get(
            "/api/v1/customers/acme/current_usage?external_subscription_id=", headers=reader
        )
    )
    assert empty == named


async def test_several_or_no_active_subscriptions_need_the_subscription_named(
    gateway: Gateway,
) -> None:
    await seed_catalog(gateway)
    await _subscribe(gateway, "acme", "sub_a")
    await _subscribe(gateway, "acme", "sub_b")
    reader = await gateway.headers("billing:read")
    several = await gateway.client.get("/api/v1/customers/acme/current_usage", headers=reader)
    assert several.status_code == 422
    assert several.json()["error_details"] == {
        "external_subscription_id": ["several_active_subscriptions"]
    }
    writer = await gateway.headers("billing:write")
    ok(
        await gateway.client.post(
            "/api/v1/customers", json={"customer": {"external_id": "solo"}}, headers=writer
        )
    )
    none = await gateway.client.get("/api/v1/customers/solo/current_usage", headers=reader)
    assert none.status_code == 422
    assert none.json()["error_details"] == {"external_subscription_id": ["no_active_subscription"]}
    unknown = await gateway.client.get("/api/v1/customers/ghost/current_usage", headers=reader)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "customer_not_found"
