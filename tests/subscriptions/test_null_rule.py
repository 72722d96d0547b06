"""Nulls Lago gives a meaning in a subscription update reach Lago; the SDKs' other nulls do not."""

from __future__ import annotations

from typing import Any

from tests.billing.support import BASIC, audit_rows, ok, seed_catalog
from tests.conftest import Gateway

PATH = "/api/v1/subscriptions/sub_acme"


async def _subscribed(gateway: Gateway, **extra: Any) -> dict[str, str]:
    await seed_catalog(gateway)
    writer = await gateway.headers("billing:write")
    body = {
        "subscription": {
            "external_customer_id": "acme",
            "plan_code": BASIC,
            "external_id": "sub_acme",
            **extra,
        }
    }
    ok(await gateway.client.post("/api/v1/subscriptions", json=body, headers=writer))
    return writer


async def test_ending_at_null_undoes_a_scheduled_end_and_name_null_clears_it(
    gateway: Gateway,
) -> None:
    writer = await _subscribed(gateway, name="Main", ending_at="2099-01-31T00:00:00Z")
    assert gateway.emulator.subscription("sub_acme")["ending_at"] == "2099-01-31T00:00:00Z"
    body = {
        "subscription": {
            "ending_at": None,
            "name": None,
            "subscription_at": None,
            "plan_overrides": None,
        }
    }
    answer = ok(await gateway.client.put(PATH, json=body, headers=writer))
    assert (answer["subscription"]["ending_at"], answer["subscription"]["name"]) == (None, None)
    stored = gateway.emulator.subscription("sub_acme")
    assert (stored["ending_at"], stored["name"]) == (None, None)
    # subscription_at and plan_overrides have no null meaning: dropped, the start is unchanged.
    assert stored["subscription_at"] is not None
    [row] = await audit_rows(gateway, "subscriptions.update")
    assert (row.outcome, row.detail) == ("success", {"cleared": ["ending_at", "name"]})


async def test_only_meaningless_nulls_is_rails_400_as_before(gateway: Gateway) -> None:
    writer = await _subscribed(gateway)
    body = {"subscription": {"subscription_at": None, "billing_time": None}}
    refused = await gateway.client.put(PATH, json=body, headers=writer)
    assert refused.status_code == 400
    assert gateway.emulator.subscription("sub_acme")["ending_at"] is None
    # Lago's spec requires ending_at in an update: the empty body Lago refused breaks it.
    [violation] = gateway.emulator.contract_violations
    assert "'ending_at' is a required property" in violation
    gateway.emulator.contract_violations.clear()


async def test_a_null_inside_a_nested_object_is_still_dropped(gateway: Gateway) -> None:
    writer = await _subscribed(gateway, ending_at="2099-01-31T00:00:00Z")
    nested = {"payment_method": {"payment_method_id": None}}
    body = {"subscription": {"name": "Renamed", "ending_at": "2099-02-28T00:00:00Z", **nested}}
    answer = ok(await gateway.client.put(PATH, json=body, headers=writer))
    assert answer["subscription"]["name"] == "Renamed"
    assert gateway.emulator.subscription("sub_acme")["ending_at"] == "2099-02-28T00:00:00Z"
