"""Recurring token grants: a plan's ``token_grant`` kept as a Lago recurring transaction rule
on the subscriber's token wallet (``gateway.packs.grants``), granted by Lago's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.db import utcnow
from gateway.packs import grants
from gateway.packs.account import refresh_account
from gateway.packs.service import token_wallet
from lago.emulator.recurring_rules import run_clock
from tests.conftest import Gateway
from tests.packs.conftest import subscribe


async def _wallet(gw: Gateway, customer: str) -> dict[str, Any]:
    catalog = gw.parts.catalog
    assert catalog is not None and catalog.token_wallet is not None
    wallet = await token_wallet(gw.runtime.lago, catalog.token_wallet, customer, create=False)
    assert wallet is not None
    return wallet


async def _sync(gw: Gateway, customer: str, plan: str | None) -> grants.GrantSync:
    assert gw.parts.catalog is not None
    return await grants.sync_grants(gw.runtime.lago, gw.parts.catalog, customer, plan)


async def test_sync_creates_the_rule_once(shop: Gateway) -> None:
    await shop.runtime.lago.call("POST", "/customers", json={"customer": {"external_id": "pam"}})

    first = await _sync(shop, "pam", "premium_monthly")
    again = await _sync(shop, "pam", "premium_monthly")

    assert (first.outcome, again.outcome) == ("created", "unchanged")
    [rule] = (await _wallet(shop, "pam"))["recurring_transaction_rules"]
    assert first.rule == rule == again.rule
    assert (rule["trigger"], rule["method"], rule["interval"]) == ("interval", "fixed", "weekly")
    assert (rule["granted_credits"], rule["paid_credits"]) == ("500.0", "0.0")
    assert rule["transaction_name"] == "Premium: 500 tokens a week"
    assert rule["transaction_metadata"] == [{"key": "gateway_grant", "value": "premium_monthly"}]
    # The first grant is one week after the rule was made.
    starts = datetime.fromisoformat(rule["started_at"].replace("Z", "+00:00"))
    assert abs(starts - (utcnow() + timedelta(weeks=1))) < timedelta(minutes=1)
    # Lago holds that one rule, nothing terminated or replaced.
    [stored] = shop.emulator.wallets[first.lago_wallet_id or ""]["recurring_transaction_rules"]
    assert stored["status"] == "active"


async def test_subscribing_through_the_gateway_syncs_the_grant(shop: Gateway) -> None:
    await subscribe(shop, "pat", "premium_monthly")

    synced = await _sync(shop, "pat", "premium_monthly")

    assert synced.outcome == "unchanged"
    [rule] = (await _wallet(shop, "pat"))["recurring_transaction_rules"]
    assert rule["transaction_metadata"] == [{"key": "gateway_grant", "value": "premium_monthly"}]


async def test_a_plan_without_grant_gets_no_wallet(shop: Gateway) -> None:
    await subscribe(shop, "bea", "basic_monthly")

    synced = await _sync(shop, "bea", "basic_monthly")

    assert synced.outcome == "no_wallet"
    assert shop.emulator.wallets == {}


async def test_a_plan_change_updates_then_removes_the_rule(shop: Gateway) -> None:
    catalog = shop.parts.catalog
    assert catalog is not None
    await subscribe(shop, "pat", "premium_monthly")
    created = await _sync(shop, "pat", "premium_monthly")
    assert created.rule is not None

    # What the subscription path calls once the plan changed (Lago makes monthly → yearly a
    # downgrade, pending until the period ends, so the active plan is still the monthly one).
    updated = await _sync(shop, "pat", "premium_yearly")
    pending = await grants.sync_customer(shop.runtime.lago, catalog, "pat")
    await shop.runtime.lago.call("DELETE", "/subscriptions/sub_pat")
    removed = await grants.sync_customer(shop.runtime.lago, catalog, "pat")

    assert pending.outcome == "updated"  # back to premium_monthly's marker
    assert updated.outcome == "updated"
    assert updated.rule is not None
    # Updated in place: the same rule, the same anniversary.
    assert updated.rule["lago_id"] == created.rule["lago_id"]
    assert updated.rule["started_at"] == created.rule["started_at"]
    assert updated.rule["transaction_metadata"][0]["value"] == "premium_yearly"
    assert removed.outcome == "removed"
    assert (await _wallet(shop, "pat"))["recurring_transaction_rules"] == []
    assert (await _sync(shop, "pat", "basic_monthly")).outcome == "unchanged"
    assert (await _sync(shop, "pat", None)).outcome == "unchanged"


async def test_lagos_clock_grants_500_tokens_a_week_later(shop: Gateway) -> None:
    await subscribe(shop, "gus", "premium_monthly")
    await _sync(shop, "gus", "premium_monthly")
    now = utcnow()
    lago = shop.emulator

    lago.clock = lambda: now + timedelta(days=6)
    assert run_clock(lago)["wallet_transactions"] == []
    lago.clock = lambda: now + timedelta(weeks=1, hours=1)
    [granted] = run_clock(lago)["wallet_transactions"]
    lago.clock = lambda: now + timedelta(weeks=1, hours=2)
    assert run_clock(lago)["wallet_transactions"] == []  # once that day

    assert (granted["transaction_status"], granted["status"]) == ("granted", "settled")
    assert (granted["credit_amount"], granted["source"]) == ("500.0", "interval")
    assert granted["name"] == "Premium: 500 tokens a week"
    database, catalog = shop.runtime.database, shop.parts.catalog
    await refresh_account(database, shop.runtime.lago, catalog, "gus")
    response = await shop.client.get(
        "/gateway/customers/gus/balance", headers=await shop.headers("billing:read")
    )
    assert response.status_code == 200, response.text
    assert response.json()["balance"]["wallet"]["settled_credits"] == "500.0"
    # And the next one a week after that.
    wallet = await _wallet(shop, "gus")
    upcoming = grants.next_grant(
        catalog, "premium_monthly", wallet, now + timedelta(weeks=1, hours=2)
    )
    assert upcoming is not None
    rule_start = datetime.fromisoformat(wallet["recurring_transaction_rules"][0]["started_at"])
    assert upcoming["next_grant_on"] == (rule_start + timedelta(weeks=1)).date().isoformat()


async def test_a_rule_made_in_lago_is_left_alone(shop: Gateway) -> None:
    await subscribe(shop, "hal", "premium_monthly")
    catalog = shop.parts.catalog
    assert catalog is not None and catalog.token_wallet is not None
    wallet = await token_wallet(shop.runtime.lago, catalog.token_wallet, "hal", create=True)
    assert wallet is not None
    mine = {"trigger": "threshold", "threshold_credits": "10", "granted_credits": "50",
            "transaction_name": "Support top-up"}  # fmt: skip
    await shop.runtime.lago.call(
        "PUT",
        f"/wallets/{wallet['lago_id']}",
        json={"wallet": {"recurring_transaction_rules": [mine]}},
    )

    synced = await _sync(shop, "hal", "premium_monthly")
    removing = await _sync(shop, "hal", None)

    assert (synced.outcome, removing.outcome) == ("conflict", "conflict")
    [rule] = (await _wallet(shop, "hal"))["recurring_transaction_rules"]
    assert (rule["transaction_name"], rule["trigger"]) == ("Support top-up", "threshold")


async def _subscribe_in_lago(gw: Gateway, customer: str, plan: str) -> None:
    """Subscribed in Lago itself (around the gateway): only the worker's pass syncs it."""
    lago = gw.runtime.lago
    await lago.call("POST", "/customers", json={"customer": {"external_id": customer}})
    subscription = {"external_customer_id": customer, "plan_code": plan,
                    "external_id": f"sub_{customer}"}  # fmt: skip
    await lago.call("POST", "/subscriptions", json={"subscription": subscription})


async def test_the_worker_pass_syncs_every_subscriber(shop: Gateway) -> None:
    await _subscribe_in_lago(shop, "ann", "premium_monthly")
    await _subscribe_in_lago(shop, "ben", "premium_yearly")
    await _subscribe_in_lago(shop, "cat", "basic_monthly")
    lago = shop.runtime.lago

    first = await grants.run_once(lago, shop.parts.catalog)
    second = await grants.run_once(lago, shop.parts.catalog)
    await lago.call("DELETE", "/subscriptions/sub_ann")
    third = await grants.run_once(lago, shop.parts.catalog)

    assert first == {"created": 2, "no_wallet": 1}
    assert second == {"unchanged": 2, "no_wallet": 1}
    assert third == {"removed": 1, "unchanged": 1, "no_wallet": 1}
    assert (await _wallet(shop, "ann"))["recurring_transaction_rules"] == []
    assert len((await _wallet(shop, "ben"))["recurring_transaction_rules"]) == 1


def test_next_grant_from_the_catalog_then_from_the_rule(shop: Gateway) -> None:
    catalog = shop.parts.catalog
    now = datetime(2026, 1, 31, 9, tzinfo=UTC)

    assert grants.next_grant(catalog, "basic_monthly", None, now) is None
    assert grants.next_grant(catalog, "premium_monthly", None, now) == {
        "tokens": 500,
        "interval": "weekly",
        "name": "Premium: 500 tokens a week",
        "next_grant_on": "2026-02-07",
        "source": "catalog",
    }
    rule = {"status": "active", "interval": "monthly", "granted_credits": "120.0",
            "started_at": "2025-10-31T12:00:00Z", "transaction_name": "Monthly",
            "transaction_metadata": [{"key": "gateway_grant", "value": "x"}]}  # fmt: skip
    wallet = {"created_at": "2025-01-01T00:00:00Z", "recurring_transaction_rules": [rule]}
    # The rule wins over the catalog; a 31st falls on the last day of a shorter month.
    assert grants.next_grant(catalog, "premium_monthly", wallet, now) == {
        "tokens": 120,
        "interval": "monthly",
        "name": "Monthly",
        "next_grant_on": "2026-02-28",
        "source": "lago",
    }
    # A rule someone made in Lago is not the plan's grant.
    human = {**rule, "transaction_metadata": []}
    found = grants.next_grant(
        catalog, "premium_monthly", {"recurring_transaction_rules": [human]}, now
    )
    assert found is not None and found["source"] == "catalog"
