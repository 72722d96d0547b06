"""Wallets, wallet transactions, applied coupons and catalog reads through the gateway."""

from __future__ import annotations

from tests.billing.support import BASIC, audit_rows, ok, outcomes, seed_catalog
from tests.conftest import Gateway


async def _customer(gw: Gateway, headers: dict[str, str]) -> None:
    ok(
        await gw.client.post(
            "/api/v1/customers",
            json={"customer": {"external_id": "acme", "currency": "USD"}},
            headers=headers,
        )
    )


async def test_wallet_top_up_and_transactions_follow_lagos_rules(gateway: Gateway) -> None:
    writer = await gateway.headers("billing:write")
    reader = await gateway.headers("billing:read")
    await _customer(gateway, writer)
    created = ok(
        await gateway.client.post(
            "/api/v1/wallets",
            json={
                "wallet": {
                    "external_customer_id": "acme",
                    "currency": "USD",
                    "rate_amount": "1.0",
                    "name": "Tokens",
                    "granted_credits": "10.0",
                }
            },
            headers=writer,
        )
    )["wallet"]
    wallet_id = created["lago_id"]
    assert gateway.emulator.wallets[wallet_id]["external_customer_id"] == "acme"
    topped = ok(
        await gateway.client.post(
            "/api/v1/wallet_transactions",
            json={
                "wallet_transaction": {
                    "wallet_id": wallet_id,
                    "paid_credits": "20",
                    "granted_credits": "5",
                }
            },
            headers=writer,
        )
    )["wallet_transactions"]
    assert {(t["transaction_status"], t["status"]) for t in topped} == {
        ("purchased", "pending"),
        ("granted", "settled"),
    }
    wallet = ok(await gateway.client.get(f"/api/v1/wallets/{wallet_id}", headers=reader))["wallet"]
    assert float(wallet["credits_balance"]) == 15.0  # paid credits wait for their invoice
    listed = ok(
        await gateway.client.get(
            f"/api/v1/wallets/{wallet_id}/wallet_transactions?status=pending", headers=reader
        )
    )
    assert [t["transaction_status"] for t in listed["wallet_transactions"]] == ["purchased"]
    mine = ok(await gateway.client.get("/api/v1/wallets?external_customer_id=acme", headers=reader))
    assert [w["lago_id"] for w in mine["wallets"]] == [wallet_id]
    ok(
        await gateway.client.put(
            f"/api/v1/wallets/{wallet_id}", json={"wallet": {"name": "Credits"}}, headers=writer
        )
    )
    assert gateway.emulator.wallets[wallet_id]["name"] == "Credits"
    ok(await gateway.client.delete(f"/api/v1/wallets/{wallet_id}", headers=writer))
    assert gateway.emulator.wallets[wallet_id]["status"] == "terminated"
    assert [o for o in outcomes(await audit_rows(gateway)) if o[0] != "customers.upsert"] == [
        ("wallets.create", "success", "lago", 200),
        ("wallet_transactions.create", "success", "lago", 200),
        ("wallets.update", "success", "lago", 200),
        ("wallets.terminate", "success", "lago", 200),
    ]


async def test_wallet_checks_name_the_missing_field(gateway: Gateway) -> None:
    writer = await gateway.headers("billing:write")
    reader = await gateway.headers("billing:read")
    missing = await gateway.client.post(
        "/api/v1/wallets",
        json={"wallet": {"external_customer_id": "acme", "rate_amount": "abc"}},
        headers=writer,
    )
    assert missing.status_code == 422
    assert missing.json()["error_details"] == {
        "currency": ["value_is_mandatory"],
        "rate_amount": ["value_is_invalid"],
    }
    no_wallet = await gateway.client.post(
        "/api/v1/wallet_transactions",
        json={"wallet_transaction": {"paid_credits": "1"}},
        headers=writer,
    )
    assert no_wallet.json()["error_details"] == {"wallet_id": ["value_is_mandatory"]}
    malformed = await gateway.client.post(
        "/api/v1/wallet_transactions",
        json={"wallet_transaction": {"wallet_id": "nope", "paid_credits": "1"}},
        headers=writer,
    )
    assert malformed.json()["error_details"] == {"wallet_id": ["value_is_invalid"]}
    not_an_id = await gateway.client.get("/api/v1/wallets/nope", headers=reader)
    assert not_an_id.status_code == 404
    assert not_an_id.json() == {"status": 404, "error": "Not Found", "code": "wallet_not_found"}
    unknown = await gateway.client.get(
        "/api/v1/wallets/1a901a90-1a90-1a90-1a90-1a901a901a90", headers=reader
    )
    assert unknown.json()["code"] == "wallet_not_found"
    unscoped = await gateway.client.get("/api/v1/wallets", headers=reader)
    assert unscoped.status_code == 422
    assert unscoped.json()["error_details"] == {"external_customer_id": ["value_is_mandatory"]}
    assert gateway.emulator.wallets == {}


async def test_coupons_apply_once_and_lagos_refusals_pass_through(gateway: Gateway) -> None:
    await seed_catalog(gateway)
    writer = await gateway.headers("billing:write")
    reader = await gateway.headers("billing:read")
    await _customer(gateway, writer)
    apply = {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome"}}
    applied = ok(await gateway.client.post("/api/v1/applied_coupons", json=apply, headers=writer))[
        "applied_coupon"
    ]
    assert gateway.emulator.applied_coupons[applied["lago_id"]]["status"] == "active"
    again = await gateway.client.post("/api/v1/applied_coupons", json=apply, headers=writer)
    assert again.status_code == 422
    assert again.json()["error_details"] == {"coupon": ["coupon_is_not_reusable"]}
    unknown = await gateway.client.post(
        "/api/v1/applied_coupons",
        json={"applied_coupon": {"external_customer_id": "acme", "coupon_code": "nope"}},
        headers=writer,
    )
    assert unknown.json()["code"] == "coupon_not_found"
    listed = ok(
        await gateway.client.get(
            "/api/v1/applied_coupons?external_customer_id=acme", headers=reader
        )
    )
    assert [a["coupon_code"] for a in listed["applied_coupons"]] == ["welcome"]
    ok(
        await gateway.client.delete(
            f"/api/v1/customers/acme/applied_coupons/{applied['lago_id']}", headers=writer
        )
    )
    assert gateway.emulator.applied_coupons[applied["lago_id"]]["status"] == "terminated"
    assert [o for o in outcomes(await audit_rows(gateway)) if o[0].startswith("applied")] == [
        ("applied_coupons.create", "success", "lago", 200),
        ("applied_coupons.create", "rejected", "lago", 422),
        ("applied_coupons.create", "rejected", "lago", 404),
        ("applied_coupons.delete", "success", "lago", 200),
    ]


async def test_plans_metrics_and_coupons_are_readable_with_billing_read(gateway: Gateway) -> None:
    await seed_catalog(gateway)
    reader = await gateway.headers("billing:read")
    plans = ok(await gateway.client.get("/api/v1/plans?per_page=1", headers=reader))
    assert plans["meta"]["total_count"] == 2 and len(plans["plans"]) == 1
    assert (
        ok(await gateway.client.get(f"/api/v1/plans/{BASIC}", headers=reader))["plan"][
            "amount_cents"
        ]
        == 999
    )
    missing = await gateway.client.get("/api/v1/plans/platinum", headers=reader)
    assert (missing.status_code, missing.json()["code"]) == (404, "plan_not_found")
    metrics = ok(await gateway.client.get("/api/v1/billable_metrics", headers=reader))
    assert [m["code"] for m in metrics["billable_metrics"]] == ["photo_generation"]
    assert ok(
        await gateway.client.get("/api/v1/billable_metrics/photo_generation", headers=reader)
    )["billable_metric"]["aggregation_type"] == ("count_agg")
    assert [
        c["code"]
        for c in ok(await gateway.client.get("/api/v1/coupons", headers=reader))["coupons"]
    ] == ["welcome"]
    assert (
        ok(await gateway.client.get("/api/v1/coupons/welcome", headers=reader))["coupon"][
            "amount_cents"
        ]
        == 500
    )
    events_only = await gateway.headers("events:write")
    assert (await gateway.client.get("/api/v1/plans", headers=events_only)).status_code == 403


async def test_writes_need_billing_write(gateway: Gateway) -> None:
    reader = await gateway.headers("billing:read")
    for path, body in (
        (
            "/api/v1/wallets",
            {"wallet": {"external_customer_id": "a", "currency": "USD", "rate_amount": "1"}},
        ),
        ("/api/v1/wallet_transactions", {"wallet_transaction": {"wallet_id": "w"}}),
        (
            "/api/v1/applied_coupons",
            {"applied_coupon": {"external_customer_id": "a", "coupon_code": "c"}},
        ),
    ):
        assert (await gateway.client.post(path, json=body, headers=reader)).status_code == 403
    assert (await gateway.client.delete("/api/v1/wallets/w", headers=reader)).status_code == 403
    assert await audit_rows(gateway) == []
    assert gateway.emulator.requests_by_status == {}
