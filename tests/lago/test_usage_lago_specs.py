"""Lago's spec/requests/api/v1/customers/usage_controller_spec.rb (``describe "GET
/customers/:customer_id/current_usage"``), ported to the emulator.

Not ported: taxes (``apply_taxes``, tax providers), charge and group filtering
(``filter_by_charge_code``, ``filter_by_metric_code``, ``filter_by_group``, ``full_usage``),
charge filters and past usage.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import httpx
import pytest

pytestmark = pytest.mark.asyncio

GRADUATED = {
    "graduated_ranges": [
        {"from_value": 0, "to_value": None, "per_unit_amount": "0.01", "flat_amount": "0.01"}
    ]
}


async def setup_graduated_plan(lago: httpx.AsyncClient) -> None:
    metric = {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}
    metric_id = (await lago.post("/billable_metrics", json={"billable_metric": metric})).json()[
        "billable_metric"
    ]["lago_id"]
    charge = {
        "billable_metric_id": metric_id,
        "charge_model": "graduated",
        "properties": GRADUATED,
    }
    plan = {
        "name": "Eur",
        "code": "eur",
        "interval": "monthly",
        "amount_cents": 0,
        "amount_currency": "EUR",
        "pay_in_advance": False,
        "charges": [charge],
    }
    assert (await lago.post("/plans", json={"plan": plan})).status_code == 200
    # As the spec's subscription: started two years ago (its current period: this month).
    started = (datetime.now(UTC) - timedelta(days=730)).strftime("%Y-%m-%dT%H:%M:%SZ")
    subscription = {"external_customer_id": "acme", "plan_code": "eur", "external_id": "sub-1",
                    "subscription_at": started}  # fmt: skip
    await lago.post("/subscriptions", json={"subscription": subscription})
    now = int(datetime.now(UTC).timestamp())
    events = [
        {
            "transaction_id": f"t{i}",
            "external_subscription_id": "sub-1",
            "code": "calls",
            "timestamp": now,
        }
        for i in range(4)
    ]
    assert (await lago.post("/events/batch", json={"events": events})).status_code == 200


async def test_returns_the_usage_for_the_customer(lago: httpx.AsyncClient) -> None:
    """usage_controller_spec.rb: GET /customers/:customer_id/current_usage, it "returns the
    usage for the customer" (the emulator has no taxes: total = amount)."""
    await setup_graduated_plan(lago)

    response = await lago.get(
        "/customers/acme/current_usage", params={"external_subscription_id": "sub-1"}
    )

    assert response.status_code == 200
    usage = response.json()["customer_usage"]
    today = datetime.now(UTC).date()
    last_day = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    assert usage["from_datetime"] == f"{today.replace(day=1).isoformat()}T00:00:00Z"
    assert usage["to_datetime"] == f"{last_day.isoformat()}T23:59:59Z"
    assert usage["issuing_date"] == last_day.isoformat()
    assert (usage["amount_cents"], usage["currency"]) == (5, "EUR")
    assert usage["taxes_amount_cents"] == 0 and usage["total_amount_cents"] == 5
    charge_usage = usage["charges_usage"][0]
    assert charge_usage["billable_metric"]["code"] == "calls"
    assert charge_usage["billable_metric"]["aggregation_type"] == "count_agg"
    assert charge_usage["charge"]["charge_model"] == "graduated"
    assert charge_usage["units"] == "4.0"
    assert (charge_usage["amount_cents"], charge_usage["amount_currency"]) == (5, "EUR")


async def test_unknown_customer_is_404(lago: httpx.AsyncClient) -> None:
    """usage_controller_spec.rb: context "when customer does not belongs to the organization",
    it "returns not found"."""
    response = await lago.get(
        "/customers/nobody/current_usage", params={"external_subscription_id": "sub-1"}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "customer_not_found"


@pytest.mark.parametrize("subscription", ["", "nope", "sub-other"])
async def test_a_subscription_not_active_for_the_customer_is_405(
    lago: httpx.AsyncClient, subscription: str
) -> None:
    """Invoices::CustomerUsageService#call: ``not_allowed_failure!(code:
    "no_active_subscription")`` for a missing, unknown or other customer's subscription."""
    await setup_graduated_plan(lago)
    other = {"external_customer_id": "other", "plan_code": "eur", "external_id": "sub-other"}
    await lago.post("/subscriptions", json={"subscription": other})

    response = await lago.get(
        "/customers/acme/current_usage", params={"external_subscription_id": subscription}
    )

    assert response.status_code == 405
    assert response.json() == {
        "status": 405,
        "error": "Method Not Allowed",
        "code": "no_active_subscription",
    }


async def test_a_terminated_subscription_is_405(lago: httpx.AsyncClient) -> None:
    """Invoices::CustomerUsageService.with_external_ids looks among active subscriptions only."""
    await setup_graduated_plan(lago)
    await lago.delete("/subscriptions/sub-1")

    response = await lago.get(
        "/customers/acme/current_usage", params={"external_subscription_id": "sub-1"}
    )

    assert response.status_code == 405
