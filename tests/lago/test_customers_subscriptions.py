"""Customers upsert by external_id; subscriptions follow Lago's plan-change rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = pytest.mark.asyncio


def subscription(plan: str, external_id: str = "sub_1", customer: str = "acme") -> dict[str, Any]:
    return {
        "subscription": {
            "external_customer_id": customer,
            "plan_code": plan,
            "external_id": external_id,
        }
    }


async def test_customer_upsert_changes_only_the_given_keys(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    first = await lago.post(
        "/customers",
        json={
            "customer": {
                "external_id": "acme",
                "name": "Acme",
                "email": "a@acme.test",
                "currency": "USD",
            }
        },
    )
    second = await lago.post(
        "/customers", json={"customer": {"external_id": "acme", "name": "ACME"}}
    )

    assert first.json()["customer"]["lago_id"] == second.json()["customer"]["lago_id"]
    assert state.customers["acme"]["name"] == "ACME"
    assert state.customers["acme"]["email"] == "a@acme.test"
    assert len(state.customers) == 1


async def test_customer_billing_configuration_merges(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await lago.post(
        "/customers",
        json={
            "customer": {
                "external_id": "acme",
                "billing_configuration": {"invoice_grace_period": 3},
            }
        },
    )
    await lago.post(
        "/customers",
        json={
            "customer": {
                "external_id": "acme",
                "billing_configuration": {"document_locale": "fr", "payment_provider": None},
            }
        },
    )

    config = state.customers["acme"]["billing_configuration"]
    assert config == {"invoice_grace_period": 3, "document_locale": "fr"}


async def test_customers_list_is_paginated_with_lagos_meta(lago: httpx.AsyncClient) -> None:
    for index in range(3):
        await lago.post("/customers", json={"customer": {"external_id": f"c{index}"}})

    page = (await lago.get("/customers", params={"page": 2, "per_page": 2})).json()

    assert [c["external_id"] for c in page["customers"]] == ["c2"]
    assert page["meta"] == {
        "current_page": 2,
        "next_page": None,
        "prev_page": 1,
        "total_pages": 2,
        "total_count": 3,
    }


async def test_empty_list_meta_is_page_zero(lago: httpx.AsyncClient) -> None:
    meta = (await lago.get("/customers")).json()["meta"]

    assert meta == {
        "current_page": 0,
        "next_page": None,
        "prev_page": None,
        "total_pages": 0,
        "total_count": 0,
    }


async def test_unknown_customer_is_404_customer_not_found(lago: httpx.AsyncClient) -> None:
    response = await lago.get("/customers/nobody")

    assert response.status_code == 404
    assert response.json() == {"status": 404, "error": "Not Found", "code": "customer_not_found"}


async def test_deleting_a_customer_terminates_its_subscriptions(
    lago: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    await lago.post("/subscriptions", json=subscription("pro"))

    response = await lago.delete("/customers/acme")

    assert response.status_code == 200
    assert "acme" not in state.customers
    assert state.subscription("sub_1") is None
    assert state.subscription("sub_1", "terminated") is not None


async def test_subscription_auto_creates_a_bare_customer(
    lago: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    response = await lago.post("/subscriptions", json=subscription("pro"))

    body = response.json()["subscription"]
    assert body["status"] == "active"
    assert body["plan"]["code"] == "pro"
    assert body["lago_customer_id"] == state.customers["acme"]["lago_id"]
    # Subscriptions::DatesService#charges_from_datetime: the first period begins when the
    # subscription started, not at the month's midnight.
    assert body["current_billing_period_started_at"] == body["started_at"]


async def test_a_subscription_started_earlier_bills_from_the_calendar_period(
    lago: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    """CreateService#started_at_for: a past ``subscription_at`` is when it started; its
    current period then begins on the calendar boundary (the 1st, at midnight)."""
    earlier = "2024-03-15T10:00:00Z"
    response = await lago.post(
        "/subscriptions", json={"subscription": {**subscription("pro")["subscription"],
                                                 "subscription_at": earlier}}
    )  # fmt: skip

    body = response.json()["subscription"]
    assert body["started_at"] == earlier
    assert body["current_billing_period_started_at"].endswith("-01T00:00:00Z")


async def test_same_plan_returns_the_existing_subscription(
    lago: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    first = await lago.post("/subscriptions", json=subscription("pro"))
    again = await lago.post("/subscriptions", json=subscription("pro"))

    assert first.json()["subscription"]["lago_id"] == again.json()["subscription"]["lago_id"]
    assert len(state.subscriptions) == 1


async def test_upgrade_replaces_the_subscription_immediately(
    lago: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    old = (await lago.post("/subscriptions", json=subscription("basic"))).json()["subscription"]
    new = (await lago.post("/subscriptions", json=subscription("pro"))).json()["subscription"]

    assert new["lago_id"] != old["lago_id"]
    assert new["status"] == "active"
    assert new["plan_code"] == "pro"
    assert new["previous_plan_code"] == "basic"
    assert state.subscriptions[old["lago_id"]]["status"] == "terminated"


async def test_downgrade_waits_for_the_end_of_the_period(
    lago: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    await lago.post("/subscriptions", json=subscription("pro"))
    current = (await lago.post("/subscriptions", json=subscription("basic"))).json()["subscription"]

    assert current["status"] == "active"
    assert current["plan_code"] == "pro"
    assert current["next_plan_code"] == "basic"
    assert current["downgrade_plan_date"] > current["current_billing_period_started_at"][:10]
    pending = state.subscription("sub_1", "pending")
    assert pending is not None
    assert pending["plan_code"] == "basic"
    assert pending["previous_plan_code"] == "pro"


async def test_unknown_plan_is_404_plan_not_found(lago: httpx.AsyncClient) -> None:
    response = await lago.post("/subscriptions", json=subscription("gold"))

    assert response.status_code == 404
    assert response.json()["code"] == "plan_not_found"


async def test_external_id_of_another_customer_is_422(
    lago: httpx.AsyncClient, catalog: dict[str, str]
) -> None:
    await lago.post("/subscriptions", json=subscription("pro", customer="acme"))
    response = await lago.post("/subscriptions", json=subscription("pro", customer="globex"))

    assert response.status_code == 422
    assert response.json()["error_details"] == {"external_id": ["value_already_exist"]}


async def test_subscription_list_defaults_to_active_and_filters(
    lago: httpx.AsyncClient, catalog: dict[str, str]
) -> None:
    await lago.post("/subscriptions", json=subscription("pro", "s1", "acme"))
    await lago.post("/subscriptions", json=subscription("basic", "s2", "globex"))
    await lago.post("/subscriptions", json=subscription("basic", "s1", "acme"))

    active = (await lago.get("/subscriptions")).json()["subscriptions"]
    pending = (await lago.get("/subscriptions", params={"status[]": ["pending"]})).json()
    mine = (await lago.get("/subscriptions", params={"external_customer_id": "globex"})).json()

    assert sorted(s["external_id"] for s in active) == ["s1", "s2"]
    assert [s["plan_code"] for s in pending["subscriptions"]] == ["basic"]
    assert [s["external_id"] for s in mine["subscriptions"]] == ["s2"]


async def test_terminate_and_cancel_pending(
    lago: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    await lago.post("/subscriptions", json=subscription("pro"))
    await lago.post("/subscriptions", json=subscription("basic"))

    canceled = await lago.delete("/subscriptions/sub_1", params={"status": "pending"})
    terminated = await lago.delete("/subscriptions/sub_1")
    again = await lago.delete("/subscriptions/sub_1")

    assert canceled.json()["subscription"]["status"] == "canceled"
    assert terminated.json()["subscription"]["status"] == "terminated"
    assert terminated.json()["subscription"]["terminated_at"]
    assert again.json()["code"] == "subscription_not_found"


async def test_update_subscription_name(lago: httpx.AsyncClient, catalog: dict[str, str]) -> None:
    await lago.post("/subscriptions", json=subscription("pro"))

    response = await lago.put("/subscriptions/sub_1", json={"subscription": {"name": "Team A"}})

    assert response.json()["subscription"]["name"] == "Team A"
    assert (await lago.get("/subscriptions/sub_1")).json()["subscription"]["name"] == "Team A"
