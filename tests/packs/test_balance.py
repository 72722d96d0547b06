from __future__ import annotations

import time
from typing import Any

from gateway.packs import reconciler
from gateway.packs.balance import refresh_account
from tests.conftest import Gateway
from tests.packs.conftest import subscribe


async def _events(gw: Gateway, customer: str, code: str, count: int, **properties: Any) -> None:
    """Usage through the gateway (accepted into the outbox and the meters, not forwarded:
    workers are off, so Lago has none of it)."""
    now = int(time.time())
    events = [
        {
            "transaction_id": f"{customer}-{code}-{i}",
            "external_subscription_id": f"sub_{customer}",
            "code": code,
            "timestamp": now,
            "properties": properties,
        }
        for i in range(count)
    ]
    response = await gw.client.post(
        "/api/v1/events/batch", json={"events": events}, headers=await gw.headers("events:write")
    )
    assert response.status_code == 200, response.text


async def _balance(gw: Gateway, customer: str) -> Any:
    response = await gw.client.get(
        f"/gateway/customers/{customer}/balance", headers=await gw.headers("billing:read")
    )
    assert response.status_code == 200, response.text
    return response.json()["balance"]


async def test_balance_shows_plan_period_usage_against_allowances_tokens_and_costs(
    shop: Gateway,
) -> None:
    await subscribe(shop, "alice", "basic_monthly")
    await _events(shop, "alice", "photo_generation", 3, quality="hd")
    await _events(shop, "alice", "video_generation", 2, seconds=6)

    balance = await _balance(shop, "alice")

    assert balance["plan"] == {
        "code": "basic_monthly",
        "name": "Basic",
        "interval": "monthly",
        "in_catalog": True,
    }
    assert balance["subscription"] == {"external_id": "sub_alice", "status": "active"}
    assert balance["period"]["from"] < balance["period"]["to"]
    # Events still in the outbox count: the meters see every accepted event.
    assert balance["usage"]["photo_generation"] == {
        "units": 3,
        "held": 0,
        "included": 200,
        "remaining_included": 197,
        "beyond_included": "tokens",
        "tokens_per_unit": "5",
        "can_generate": True,
        "breakdown": {"quality=hd": 3},
    }
    assert balance["usage"]["video_generation"] == {
        "units": 12,
        "held": 0,
        "included": 0,
        "remaining_included": 0,
        "beyond_included": "tokens",
        "tokens_per_unit": "3",
        "can_generate": False,
        "breakdown": {},
    }
    wallet = balance["wallet"]
    assert (wallet["settled_credits"], wallet["tokens_spent_this_period"]) == ("0", "36")
    assert wallet["available_tokens"] == "-36"
    assert balance["features"]["hd_photos"] == {"max_resolution": 2048}
    assert "video" not in balance["features"]
    assert balance["token_costs"]["photo"]["tokens"] == 5
    assert balance["token_costs"]["video"] == {
        "metric": "video_generation",
        "tokens": 15,
        "per_units": 5,
    }


async def test_paid_credits_and_the_bonus_stay_pending_until_the_credit_invoice_is_paid(
    shop: Gateway,
) -> None:
    await subscribe(shop, "bob", "free_monthly")
    bought = await shop.client.post(
        "/gateway/customers/bob/token-packs/medium", headers=await shop.headers("billing:write")
    )
    invoice_id = bought.json()["token_pack_purchase"]["lago_invoice_id"]

    before = (await _balance(shop, "bob"))["wallet"]
    await shop.runtime.lago.call(
        "PUT", f"/invoices/{invoice_id}", json={"invoice": {"payment_status": "succeeded"}}
    )
    # What Lago's wallet webhooks (or the meters' reconciliation) make the account do.
    await refresh_account(shop.runtime.database, shop.runtime.lago, shop.parts.catalog, "bob")
    paid = (await _balance(shop, "bob"))["wallet"]
    await reconciler.run_once(shop.runtime)
    await refresh_account(shop.runtime.database, shop.runtime.lago, shop.parts.catalog, "bob")
    after = (await _balance(shop, "bob"))["wallet"]

    assert (before["settled_credits"], before["pending_credits"]) == ("0.0", "199.8")
    assert before["pending_bonus_credits"] == "75.2"
    assert (paid["settled_credits"], paid["pending_credits"]) == ("199.8", "0")
    assert paid["pending_bonus_credits"] == "75.2"
    assert (after["settled_credits"], after["pending_bonus_credits"]) == ("275.0", "0")
    assert after["ongoing_credits"] == "275.0"
    assert after["available_tokens"] == "275"


async def test_beyond_the_free_allowance_only_tokens_allow_a_generation(shop: Gateway) -> None:
    await subscribe(shop, "carol", "free_monthly")
    await _events(shop, "carol", "photo_generation", 10, quality="sd")

    without_tokens = (await _balance(shop, "carol"))["usage"]["photo_generation"]
    await shop.client.post(
        "/gateway/customers/carol/token-packs/small", headers=await shop.headers("billing:write")
    )
    with_bonus_only = (await _balance(shop, "carol"))["usage"]["photo_generation"]

    assert (without_tokens["remaining_included"], without_tokens["can_generate"]) == (0, False)
    # Nothing of the Small pack is spendable until it is paid (not even its 0.2 bonus tokens).
    assert with_bonus_only["can_generate"] is False


async def test_premium_video_is_billed_so_it_never_waits_for_tokens(shop: Gateway) -> None:
    await subscribe(shop, "dan", "premium_monthly")
    await _events(shop, "dan", "photo_generation", 50)

    usage = (await _balance(shop, "dan"))["usage"]

    assert usage["photo_generation"]["included"] is None
    assert usage["photo_generation"]["can_generate"] is True
    assert usage["video_generation"]["beyond_included"] == "invoice"
    assert usage["video_generation"]["can_generate"] is True


async def test_a_customer_without_a_subscription_generates_from_tokens_only(shop: Gateway) -> None:
    await shop.runtime.lago.call("POST", "/customers", json={"customer": {"external_id": "erin"}})

    balance = await _balance(shop, "erin")

    assert (balance["plan"], balance["period"], balance["subscription"]) == (None, None, None)
    assert balance["usage"]["photo_generation"]["can_generate"] is False
    assert balance["wallet"]["lago_id"] is None


async def test_balance_of_an_unknown_customer_is_404(shop: Gateway) -> None:
    response = await shop.client.get(
        "/gateway/customers/nobody/balance", headers=await shop.headers("billing:read")
    )

    assert response.status_code == 404
    assert response.json()["code"] == "customer_not_found"
