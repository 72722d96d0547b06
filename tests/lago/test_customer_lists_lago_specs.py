"""Lago's spec/requests/api/v1/customers/{invoices,subscriptions,payment_requests}_controller
_spec.rb and usage_controller_spec.rb (``describe "GET /customers/:customer_id/past_usage"``),
ported to the emulator, every answer checked against Lago's OpenAPI spec.

Not ported: API key permissions, billing entity filters, and the shared index examples'
filters beyond status, payment status, currency and type (search, amounts, dates, metadata).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lago.emulator import EmulatorState, create_app

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("require_spec")]


@pytest_asyncio.fixture
async def checked(state: EmulatorState, make_client: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(create_app(state, api_key="test-lago-key", validate=True)) as client:
        yield client
    assert state.contract_violations == []


async def subscribe(lago: httpx.AsyncClient, customer: str, sub: str, plan: str) -> None:
    body = {
        "subscription": {"external_customer_id": customer, "plan_code": plan, "external_id": sub}
    }
    assert (await lago.post("/subscriptions", json=body)).status_code == 200


async def not_found(lago: httpx.AsyncClient, path: str) -> None:
    response = await lago.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "customer_not_found"


@pytest.mark.parametrize(
    "listing", ["invoices", "subscriptions", "payment_requests", "payments", "payment_methods"]
)
async def test_with_unknown_customer_returns_customer_not_found(
    checked: httpx.AsyncClient, listing: str
) -> None:
    # context "with invalid customer id" / "with unknown customer": it "returns a 404"
    await not_found(checked, f"/customers/unknown/{listing}")


async def test_invoices_returns_the_customers_invoices_newest_first(
    checked: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    # it_behaves_like "an invoice index endpoint", scoped to the customer
    await subscribe(checked, "acme", "sub-1", "basic")
    await subscribe(checked, "other", "sub-2", "basic")
    first = state.issue_invoice("acme", 1000)
    second = state.issue_invoice("acme", 500, currency="EUR")
    state.issue_invoice("other", 700)
    listed = (await checked.get("/customers/acme/invoices")).json()
    assert [i["lago_id"] for i in listed["invoices"]] == [second["lago_id"], first["lago_id"]]
    assert listed["meta"]["total_count"] == 2
    euros = (await checked.get("/customers/acme/invoices?currency=EUR")).json()
    assert [i["lago_id"] for i in euros["invoices"]] == [second["lago_id"]]


async def test_subscriptions_returns_the_customers_active_subscriptions(
    checked: httpx.AsyncClient, catalog: dict[str, str]
) -> None:
    # it_behaves_like "a subscription index endpoint": active only unless status[] says
    await subscribe(checked, "acme", "sub-1", "basic")
    await subscribe(checked, "acme", "sub-2", "pro")
    await subscribe(checked, "other", "sub-3", "basic")
    assert (await checked.delete("/subscriptions/sub-2")).status_code == 200
    active = (await checked.get("/customers/acme/subscriptions")).json()
    assert [s["external_id"] for s in active["subscriptions"]] == ["sub-1"]
    every = await checked.get("/customers/acme/subscriptions?status[]=active&status[]=terminated")
    assert sorted(s["external_id"] for s in every.json()["subscriptions"]) == ["sub-1", "sub-2"]
    by_plan = await checked.get("/customers/acme/subscriptions?plan_code=pro")
    assert by_plan.json()["subscriptions"] == []


async def test_payment_requests_of_a_known_customer(
    checked: httpx.AsyncClient, catalog: dict[str, str]
) -> None:
    await subscribe(checked, "acme", "sub-1", "basic")
    listed = (await checked.get("/customers/acme/payment_requests")).json()
    assert listed["payment_requests"] == [] and listed["meta"]["total_count"] == 0


def _charge_ids(state: EmulatorState) -> dict[str, str]:
    return {c["billable_metric_code"]: c["lago_id"] for c in state.plans["basic"]["charges"]}


def invoiced_period(state: EmulatorState, sub: str, start: str, end: str) -> dict[str, Any]:
    """As the spec's invoice_subscription with two charge fees (taxes 2 each)."""
    charges = _charge_ids(state)
    fees = [
        {
            "amount_cents": cents,
            "units": units,
            "taxes_amount_cents": 2,
            "lago_charge_id": charges[code],
            "external_subscription_id": sub,
            "item": {"type": "charge", "code": code, "name": code.title()},
        }
        for code, cents, units in (("tokens", 120, "12.0"), ("calls", 100, "3.0"))
    ]
    invoice = state.issue_invoice("acme", 0, fees=fees)
    period = {
        "external_subscription_id": sub,
        "charges_from_datetime": start,
        "charges_to_datetime": end,
    }
    state.invoices[invoice["lago_id"]]["billing_periods"] = [period]
    return invoice


async def test_past_usage_returns_the_past_usage(
    checked: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    # it "returns the past usage"
    await subscribe(checked, "acme", "sub-1", "basic")
    invoice = invoiced_period(state, "sub-1", "2023-08-17T00:00:00Z", "2023-09-16T23:59:59Z")
    newer = invoiced_period(state, "sub-1", "2023-09-17T00:00:00Z", "2023-10-16T23:59:59Z")
    response = await checked.get(
        "/customers/acme/past_usage?external_subscription_id=sub-1&periods_count=2"
    )
    assert response.status_code == 200, response.text
    periods = response.json()["usage_periods"]
    assert [p["lago_invoice_id"] for p in periods] == [newer["lago_id"], invoice["lago_id"]]
    usage = periods[1]
    assert (usage["from_datetime"], usage["to_datetime"]) == (
        "2023-08-17T00:00:00Z",
        "2023-09-16T23:59:59Z",
    )
    assert usage["issuing_date"] == invoice["issuing_date"]
    assert (usage["amount_cents"], usage["taxes_amount_cents"]) == (220, 4)
    assert usage["total_amount_cents"] == 224
    tokens, calls = usage["charges_usage"]
    assert tokens["billable_metric"]["code"] == "tokens"
    assert tokens["billable_metric"]["aggregation_type"] == "sum_agg"
    assert tokens["charge"]["charge_model"] == "standard"
    assert (tokens["units"], tokens["amount_cents"], tokens["amount_currency"]) == (
        "12.0",
        120,
        "USD",
    )
    assert calls["charge"]["charge_model"] == "graduated"
    one = await checked.get(
        "/customers/acme/past_usage?external_subscription_id=sub-1"
        "&periods_count=1&billable_metric_code=calls"
    )
    [only] = one.json()["usage_periods"]
    assert only["lago_invoice_id"] == newer["lago_id"]
    assert [c["billable_metric"]["code"] for c in only["charges_usage"]] == ["calls"]


async def test_past_usage_refusals(lago: httpx.AsyncClient, catalog: dict[str, str]) -> None:
    # Not ``checked``: a request without the required query parameter breaks the spec.
    checked = lago
    await subscribe(checked, "acme", "sub-1", "basic")
    # context "when missing external_subscription_id": unprocessable entity
    missing = await checked.get("/customers/acme/past_usage")
    assert missing.status_code == 422
    assert missing.json()["error_details"] == {"external_subscription_id": ["value_is_mandatory"]}
    # context "with invalid billable metric code": not found
    unknown = await checked.get(
        "/customers/acme/past_usage?external_subscription_id=sub-1&billable_metric_code=nope"
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "billable_metric_not_found"
    # PastUsageQuery does not look the customer up: an unknown one has no periods.
    nobody = await checked.get("/customers/nobody/past_usage?external_subscription_id=sub-1")
    assert nobody.status_code == 200 and nobody.json()["usage_periods"] == []


async def test_checkout_url_returns_the_new_generated_checkout_url(
    checked: httpx.AsyncClient,
) -> None:
    # customers_controller_spec.rb, describe "POST /api/v1/customers/:external_customer_id/
    # checkout_url": a customer of the stripe provider gets the provider's link
    customer = {
        "external_id": "acme",
        "currency": "USD",
        "billing_configuration": {
            "payment_provider": "stripe",
            "payment_provider_code": "stripe_prod",
        },
    }
    assert (await checked.post("/customers", json={"customer": customer})).status_code == 200
    response = await checked.post("/customers/acme/checkout_url")
    assert response.status_code == 200, response.text
    answer = response.json()["customer"]
    assert (answer["external_customer_id"], answer["payment_provider"]) == ("acme", "stripe")
    assert answer["checkout_url"].startswith("https://")


async def test_checkout_url_without_a_provider_or_customer(checked: httpx.AsyncClient) -> None:
    # Customers::GenerateCheckoutUrlService: no provider customer, no customer
    body = {"customer": {"external_id": "acme", "currency": "USD"}}
    assert (await checked.post("/customers", json=body)).status_code == 200
    none = await checked.post("/customers/acme/checkout_url")
    assert none.status_code == 422
    assert none.json()["error_details"] == {"base": ["no_linked_payment_provider"]}
    unknown = await checked.post("/customers/nobody/checkout_url")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "customer_not_found")
