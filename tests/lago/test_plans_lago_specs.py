"""Lago's spec/requests/api/v1/plans_controller_spec.rb, ported to the emulator, with the
validations of app/models/plan.rb and app/services/plans/update_service.rb.

Each test names the ``describe``/``context``/``it`` it ports. Not ported: API key
permissions, premium fields, minimum commitments, usage thresholds, fixed charges and add-ons,
taxes, pricing units, the product catalog, metadata, plan overrides and deletion jobs.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.asyncio

PLAN = {
    "name": "P1",
    "invoice_display_name": "P1 invoice name",
    "code": "plan_code",
    "interval": "monthly",
    "description": "description",
    "amount_cents": 100,
    "amount_currency": "EUR",
    "trial_period": 1,
    "pay_in_advance": False,
}


async def metric(lago: httpx.AsyncClient) -> str:
    body = {"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}
    response = await lago.post("/billable_metrics", json=body)
    lago_id: str = response.json()["billable_metric"]["lago_id"]
    return lago_id


def charge(metric_id: str) -> dict[str, Any]:
    return {
        "billable_metric_id": metric_id,
        "code": "charge_code",
        "charge_model": "standard",
        "properties": {"amount": "0.22"},
    }


async def create(lago: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await lago.post("/plans", json={"plan": params})


async def test_create_a_plan(lago: httpx.AsyncClient) -> None:
    """plans_controller_spec.rb: POST /api/v1/plans, context "when interval is present", it
    "creates a plan" (its charge; no fixed charge, tax or threshold)."""
    response = await create(lago, **PLAN, charges=[charge(await metric(lago))])

    assert response.status_code == 200
    plan = response.json()["plan"]
    assert plan["code"] == "plan_code"
    assert plan["charges"][0]["code"] == "charge_code"


async def test_create_without_charges(lago: httpx.AsyncClient) -> None:
    """plans_controller_spec.rb: POST, context "without charges", it "creates a plan"."""
    response = await create(lago, **PLAN)

    assert response.status_code == 200
    assert response.json()["plan"]["charges"] == []


@pytest.mark.parametrize("interval", [None, "", "daily"])
async def test_a_blank_or_unknown_interval_is_value_is_invalid(
    lago: httpx.AsyncClient, interval: Any
) -> None:
    """plans_controller_spec.rb: POST, context "when interval is empty", it "returns an error"
    (``presence: {message: "value_is_invalid"}``, and the enum's own check)."""
    response = await create(lago, **{**PLAN, "interval": interval})

    assert response.status_code == 422
    assert response.json()["error_details"] == {"interval": ["value_is_invalid"]}


async def test_an_unknown_metric_is_404_before_any_validation(lago: httpx.AsyncClient) -> None:
    """plans_controller_spec.rb: POST, context "when billable_metric for charge is not found",
    it "returns a 404 response" (``be_not_found_error("billable_metrics")``)."""
    response = await create(lago, name="", charges=[charge("unknown")])

    assert response.status_code == 404
    assert response.json()["code"] == "billable_metrics_not_found"


async def test_every_failed_validation_is_reported(lago: httpx.AsyncClient) -> None:
    """Plan validations: blank ``name``/``code`` and ``amount_cents`` are mandatory, a
    currency outside the list, a missing interval and a non-boolean ``pay_in_advance`` are
    ``value_is_invalid``."""
    response = await create(lago, name=" ")

    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "name": ["value_is_mandatory"],
        "code": ["value_is_mandatory"],
        "amount_currency": ["value_is_invalid"],
        "interval": ["value_is_invalid"],
        "amount_cents": ["value_is_mandatory"],
        "pay_in_advance": ["value_is_invalid"],
    }


async def test_update_a_plan(lago: httpx.AsyncClient) -> None:
    """plans_controller_spec.rb: PUT /api/v1/plans/:code, it "updates a plan"."""
    await create(lago, **PLAN)

    response = await lago.put(
        "/plans/plan_code", json={"plan": {**PLAN, "code": "plan_code2", "name": "P2"}}
    )

    assert response.status_code == 200
    assert response.json()["plan"]["code"] == "plan_code2"


async def test_update_an_unknown_plan_is_404(lago: httpx.AsyncClient) -> None:
    """plans_controller_spec.rb: PUT, context "when plan does not exist", it "returns
    not_found error"."""
    response = await lago.put("/plans/unknown", json={"plan": PLAN})

    assert response.status_code == 404
    assert response.json()["code"] == "plan_not_found"


async def test_update_to_a_taken_code_is_422(lago: httpx.AsyncClient) -> None:
    """plans_controller_spec.rb: PUT, context "when plan code already exists in organization
    scope (validation error)", it "returns unprocessable_entity error"."""
    await create(lago, **PLAN)
    await create(lago, **{**PLAN, "code": "other"})

    response = await lago.put("/plans/other", json={"plan": {"code": "plan_code"}})

    assert response.status_code == 422
    assert response.json()["error_details"] == {"code": ["value_already_exist"]}


async def test_a_subscribed_plan_keeps_its_code_interval_and_currency(
    lago: httpx.AsyncClient,
) -> None:
    """Plans::UpdateService: once attached to subscriptions only name, invoice_display_name,
    description and amount_cents change; the rest is ignored, not refused."""
    await create(lago, **PLAN)
    customer = {"customer": {"external_id": "acme", "currency": "EUR"}}
    assert (await lago.post("/customers", json=customer)).status_code == 200
    subscription = {"external_customer_id": "acme", "plan_code": "plan_code", "external_id": "s1"}
    assert (await lago.post("/subscriptions", json={"subscription": subscription})).is_success

    response = await lago.put(
        "/plans/plan_code",
        json={"plan": {"name": "New", "amount_cents": 200, "code": "x", "interval": "yearly"}},
    )

    assert response.status_code == 200
    plan = response.json()["plan"]
    assert (plan["name"], plan["amount_cents"]) == ("New", 200)
    assert (plan["code"], plan["interval"]) == ("plan_code", "monthly")


async def test_show_and_index(lago: httpx.AsyncClient) -> None:
    """plans_controller_spec.rb: GET /api/v1/plans/:code ("returns a plan", "when plan does
    not exist") and GET /api/v1/plans ("returns plans", "with pagination")."""
    await create(lago, **PLAN)
    await create(lago, **{**PLAN, "code": "other"})

    found = await lago.get("/plans/plan_code")
    unknown = await lago.get("/plans/unknown")
    page = await lago.get("/plans", params={"page": 1, "per_page": 1})

    assert found.json()["plan"]["code"] == "plan_code"
    assert (unknown.status_code, unknown.json()["code"]) == (404, "plan_not_found")
    assert len(page.json()["plans"]) == 1
    assert page.json()["meta"]["next_page"] == 2
    assert page.json()["meta"]["total_count"] == 2
