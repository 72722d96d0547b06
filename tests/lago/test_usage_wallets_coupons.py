"""Current usage priced from stored events; wallet credits; coupons and their refusals."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState, coupons
from lago.emulator.clock import utc_now

pytestmark = pytest.mark.asyncio


async def subscribe(lago: httpx.AsyncClient, plan: str = "pro") -> None:
    await lago.post("/customers", json={"customer": {"external_id": "acme", "currency": "USD"}})
    response = await lago.post(
        "/subscriptions",
        json={
            "subscription": {
                "external_customer_id": "acme",
                "plan_code": plan,
                "external_id": "sub_1",
            }
        },
    )
    assert response.status_code == 200, response.text


def usage_event(transaction_id: str, code: str, **properties: Any) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "external_subscription_id": "sub_1",
        "code": code,
        "timestamp": time.time(),
        "properties": properties,
    }


async def test_current_usage_prices_sum_and_graduated_count(
    lago: httpx.AsyncClient, catalog: dict[str, str]
) -> None:
    await subscribe(lago)
    events = [usage_event(f"t{i}", "tokens", tokens=100) for i in range(3)]
    events += [usage_event(f"c{i}", "calls") for i in range(12)]
    await lago.post("/events/batch", json={"events": events})

    response = await lago.get(
        "/customers/acme/current_usage", params={"external_subscription_id": "sub_1"}
    )

    usage = response.json()["customer_usage"]
    by_code = {c["billable_metric"]["code"]: c for c in usage["charges_usage"]}
    assert by_code["tokens"]["units"] == "300.0"
    assert by_code["tokens"]["amount_cents"] == 300  # 300 x 0.01
    assert by_code["calls"]["events_count"] == 12
    assert by_code["calls"]["amount_cents"] == 200  # 0-10 free, then 1 flat + 2 x 0.5
    assert usage["amount_cents"] == usage["total_amount_cents"] == 500


async def test_usage_ignores_other_subscriptions_and_old_periods(
    lago: httpx.AsyncClient, catalog: dict[str, str]
) -> None:
    await subscribe(lago)
    old = usage_event("old", "tokens", tokens=5) | {"timestamp": 1_000_000_000}
    other = usage_event("x", "tokens", tokens=7) | {"external_subscription_id": "sub_2"}
    await lago.post("/events/batch", json={"events": [old, other]})

    usage = (
        await lago.get(
            "/customers/acme/current_usage", params={"external_subscription_id": "sub_1"}
        )
    ).json()

    assert usage["customer_usage"]["amount_cents"] == 0


async def test_usage_of_unknown_subscription_is_405_no_active_subscription(
    lago: httpx.AsyncClient,
) -> None:
    await lago.post("/customers", json={"customer": {"external_id": "acme"}})

    response = await lago.get(
        "/customers/acme/current_usage", params={"external_subscription_id": "nope"}
    )

    assert response.status_code == 405
    assert response.json()["code"] == "no_active_subscription"


async def create_wallet(lago: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    await lago.post("/customers", json={"customer": {"external_id": "acme", "currency": "USD"}})
    response = await lago.post(
        "/wallets",
        json={
            "wallet": {
                "external_customer_id": "acme",
                "currency": "USD",
                "rate_amount": "1.0",
                "name": "Prepaid",
                **extra,
            }
        },
    )
    assert response.status_code == 200, response.text
    wallet: dict[str, Any] = response.json()["wallet"]
    return wallet


async def test_granted_credits_settle_immediately(lago: httpx.AsyncClient) -> None:
    wallet = await create_wallet(lago, granted_credits="10")

    assert wallet["credits_balance"] == "10.0"
    assert wallet["balance_cents"] == 1000
    assert wallet["ongoing_balance_cents"] == 1000
    assert wallet["credits_ongoing_balance"] == "10.0"


async def test_paid_credits_settle_only_when_the_credit_invoice_succeeds(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    wallet = await create_wallet(lago)
    response = await lago.post(
        "/wallet_transactions",
        json={
            "wallet_transaction": {
                "wallet_id": wallet["lago_id"],
                "paid_credits": "20",
                "granted_credits": "5",
            }
        },
    )
    paid, granted = response.json()["wallet_transactions"]

    assert paid["status"] == "pending"
    assert paid["transaction_status"] == "purchased"
    assert granted["status"] == "settled"
    invoice = state.invoices[paid["lago_invoice_id"]]
    assert invoice["invoice_type"] == "credit"
    assert (invoice["status"], invoice["payment_status"]) == ("finalized", "pending")
    assert invoice["total_amount_cents"] == 2000
    assert (await lago.get(f"/wallets/{wallet['lago_id']}")).json()["wallet"][
        "balance_cents"
    ] == 500

    await lago.put(
        f"/invoices/{invoice['lago_id']}", json={"invoice": {"payment_status": "succeeded"}}
    )

    after = (await lago.get(f"/wallets/{wallet['lago_id']}")).json()["wallet"]
    assert after["credits_balance"] == "25.0"
    assert state.wallet_transactions[paid["lago_id"]]["status"] == "settled"


async def test_failed_credit_invoice_fails_the_top_up(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    wallet = await create_wallet(lago, paid_credits="20")
    transaction = next(iter(state.wallet_transactions.values()))

    await lago.put(
        f"/invoices/{transaction['lago_invoice_id']}",
        json={"invoice": {"payment_status": "failed"}},
    )

    assert transaction["status"] == "failed"
    assert state.wallets[wallet["lago_id"]]["balance_cents"] == 0


async def test_wallet_listing_transactions_and_termination(lago: httpx.AsyncClient) -> None:
    wallet = await create_wallet(lago, granted_credits="3")
    wallet_id = wallet["lago_id"]

    listed = await lago.get("/wallets", params={"external_customer_id": "acme"})
    scoped = await lago.get("/customers/acme/wallets")
    settled = await lago.get(
        f"/wallets/{wallet_id}/wallet_transactions", params={"status": "settled"}
    )
    updated = await lago.put(f"/wallets/{wallet_id}", json={"wallet": {"name": "Main"}})
    terminated = await lago.delete(f"/wallets/{wallet_id}")

    assert listed.json()["meta"]["total_count"] == 1
    assert scoped.json()["wallets"][0]["lago_id"] == wallet_id
    assert settled.json()["wallet_transactions"][0]["credit_amount"] == "3.0"
    assert updated.json()["wallet"]["name"] == "Main"
    assert terminated.json()["wallet"]["status"] == "terminated"


async def test_wallet_currency_must_match_the_customer(lago: httpx.AsyncClient) -> None:
    await lago.post("/customers", json={"customer": {"external_id": "acme", "currency": "EUR"}})

    response = await lago.post(
        "/wallets",
        json={"wallet": {"external_customer_id": "acme", "currency": "USD", "rate_amount": "1"}},
    )

    assert response.json()["error_details"] == {"currency": ["currencies_does_not_match"]}


async def test_ongoing_balance_subtracts_current_usage(
    lago: httpx.AsyncClient, catalog: dict[str, str]
) -> None:
    await subscribe(lago)
    wallet = await create_wallet(lago, granted_credits="10")
    await lago.post("/events", json={"event": usage_event("t1", "tokens", tokens=250)})

    after = (await lago.get(f"/wallets/{wallet['lago_id']}")).json()["wallet"]

    assert after["ongoing_usage_balance_cents"] == 250
    assert after["ongoing_balance_cents"] == 750
    assert after["credits_ongoing_balance"] == "7.5"


def coupon(code: str, **extra: Any) -> dict[str, Any]:
    return {
        "coupon": {
            "name": code,
            "code": code,
            "coupon_type": "fixed_amount",
            "amount_cents": 500,
            "amount_currency": "USD",
            "frequency": "once",
            "expiration": "no_expiration",
            "reusable": False,
            **extra,
        }
    }


def apply(code: str) -> dict[str, Any]:
    return {"applied_coupon": {"external_customer_id": "acme", "coupon_code": code}}


async def test_coupon_application_and_refusals(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """``AppliedCoupons::CreateService#check_preconditions``: 404 unless the coupon is active;
    a coupon past ``expiration_at`` is active until ``Clock::TerminateCouponsJob`` runs
    (it is made before its ``expiration_at``: ``Coupons::ValidateService`` refuses a past one)."""
    await lago.post("/customers", json={"customer": {"external_id": "acme"}})
    await lago.post("/coupons", json=coupon("welcome"))
    state.clock = lambda: datetime(2019, 12, 1, tzinfo=UTC)
    made = await lago.post(
        "/coupons",
        json=coupon("old", expiration="time_limit", expiration_at="2020-01-01T00:00:00Z"),
    )
    assert made.status_code == 200, made.text
    state.clock = utc_now

    applied = await lago.post("/applied_coupons", json=apply("welcome"))
    again = await lago.post("/applied_coupons", json=apply("welcome"))
    unknown = await lago.post("/applied_coupons", json=apply("nope"))
    expired_but_active = await lago.post("/applied_coupons", json=apply("old"))
    await lago.post("/customers", json={"customer": {"external_id": "acme-2"}})
    assert coupons.terminate_expired(state) == ["old"]
    second = apply("old")
    second["applied_coupon"]["external_customer_id"] = "acme-2"
    terminated = await lago.post("/applied_coupons", json=second)

    assert applied.json()["applied_coupon"]["amount_cents_remaining"] == 500
    assert again.status_code == 422
    assert again.json()["error_details"] == {"coupon": ["coupon_is_not_reusable"]}
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "coupon_not_found"
    assert expired_but_active.status_code == 200
    assert terminated.status_code == 404
    assert terminated.json()["code"] == "coupon_not_found"


async def test_removed_coupon_is_terminated(lago: httpx.AsyncClient) -> None:
    await lago.post("/customers", json={"customer": {"external_id": "acme"}})
    await lago.post("/coupons", json=coupon("welcome", reusable=True))
    applied = (await lago.post("/applied_coupons", json=apply("welcome"))).json()

    removed = await lago.delete(
        f"/customers/acme/applied_coupons/{applied['applied_coupon']['lago_id']}"
    )
    active = await lago.get(
        "/applied_coupons", params={"external_customer_id": "acme", "status": "active"}
    )

    assert removed.json()["applied_coupon"]["status"] == "terminated"
    assert active.json()["applied_coupons"] == []


async def test_coupon_crud(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    created = await lago.post(
        "/coupons",
        json=coupon("pct", coupon_type="percentage", percentage_rate="10", amount_cents=None),
    )
    updated = await lago.put("/coupons/pct", json={"coupon": {"name": "Ten percent"}})
    listed = await lago.get("/coupons")
    deleted = await lago.delete("/coupons/pct")

    assert created.json()["coupon"]["percentage_rate"] == "10"
    assert updated.json()["coupon"]["name"] == "Ten percent"
    assert listed.json()["meta"]["total_count"] == 1
    assert deleted.json()["coupon"]["terminated_at"]
    assert state.coupons == {}
