"""The emulator's period close (``POST /_emulator/close_period``) against Lago's billing run.

Ported from spec/services/fees/subscription_service_spec.rb (monthly plan, ``when
subscription start is on the 1st of the month`` / ``on any other day``: 100 → 100 and 55
cents; ``when subscription is created in the past`` and ``pay in advance``: the full amount),
spec/services/invoices/calculate_fees_service_spec.rb (charge fees from the period's events;
pay-in-advance charges left out) and app/services/invoices/subscription_service.rb (``invoice.
created``, or ``invoice.drafted`` within the customer's grace period). Not ported: trials,
taxes, adjusted fees, minimum commitments, fixed charges, progressive billing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState, create_app
from lago.emulator.contract import load_spec

pytestmark = pytest.mark.asyncio
API_KEY = "test-lago-key"
# The spec's subscription: monthly, 100 cents, EUR; the billing run's day: 2022-03-31.
NOW = datetime(2022, 3, 31, 12, 0, tzinfo=UTC)


def _client(app: Any, base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=base,
        headers={"Authorization": f"Bearer {API_KEY}"},
    )


async def _setup(
    state: EmulatorState, *, started: str, in_advance: bool = False, charge_in_advance: bool = False
) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    state.clock = lambda: NOW
    app = create_app(state, api_key=API_KEY, validate=load_spec() is not None)
    lago, control = _client(app, "http://lago.test/api/v1"), _client(app, "http://lago.test")
    metric = {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}
    created = await lago.post("/billable_metrics", json={"billable_metric": metric})
    charge = {
        "billable_metric_id": created.json()["billable_metric"]["lago_id"],
        "charge_model": "standard",
        "pay_in_advance": charge_in_advance,
        "properties": {"amount": "0.10"},
    }
    plan = {
        "name": "Basic",
        "code": "basic",
        "interval": "monthly",
        "amount_cents": 100,
        "amount_currency": "EUR",
        "pay_in_advance": in_advance,
        "charges": [charge],
    }
    assert (await lago.post("/plans", json={"plan": plan})).status_code == 200
    customer = {"external_id": "acme", "name": "Acme", "currency": "EUR"}
    await lago.post("/customers", json={"customer": customer})
    subscription = {"external_customer_id": "acme", "plan_code": "basic",
                    "external_id": "sub_id", "subscription_at": started}  # fmt: skip
    assert (await lago.post("/subscriptions", json={"subscription": subscription})).is_success
    endpoint = {"webhook_url": "http://hooks.test/lago", "signature_algo": "hmac"}
    await lago.post("/webhook_endpoints", json={"webhook_endpoint": endpoint})
    return lago, control


async def _events(lago: httpx.AsyncClient, *timestamps: str) -> None:
    events = [
        {
            "transaction_id": f"t{n}-{ts}",
            "external_subscription_id": "sub_id",
            "code": "calls",
            "timestamp": int(datetime.fromisoformat(ts).replace(tzinfo=UTC).timestamp()),
        }
        for n, ts in enumerate(timestamps)
    ]
    assert (await lago.post("/events/batch", json={"events": events})).status_code == 200


def _fees(invoice: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {fee["item"]["code"]: (fee["amount_cents"], fee["units"]) for fee in invoice["fees"]}


async def test_full_period_in_arrears_bills_the_plan_and_the_periods_events() -> None:
    """subscription_service_spec.rb: "when subscription start is on the 1st of the month",
    "creates a fee" (100); calculate_fees_service_spec.rb: charge fees of the period's
    events only; the invoice's ``invoice.created`` webhook is queued."""
    state = EmulatorState(api_url="http://lago.test")
    lago, control = await _setup(state, started="2022-01-01T00:01:00Z")
    await _events(lago, "2022-02-27T10:00:00", "2022-03-02T10:00:00", "2022-03-30T23:00:00")

    answer = await control.post("/_emulator/close_period", json={})

    assert answer.status_code == 200
    [invoice] = answer.json()["invoices"]
    assert _fees(invoice) == {"basic": (100, "1.0"), "calls": (20, "2.0")}
    assert (invoice["invoice_type"], invoice["status"]) == ("subscription", "finalized")
    assert invoice["total_amount_cents"] == 120
    [period] = invoice["billing_periods"]
    assert period["subscription_from_datetime"] == "2022-03-01T00:00:00Z"
    assert period["subscription_to_datetime"] == "2022-03-31T23:59:59Z"
    assert period["charges_to_datetime"] == "2022-03-31T12:00:00Z"
    assert period["invoicing_reason"] == "subscription_periodic"
    hooks = [w for w in state.webhooks_pending if w.webhook_type == "invoice.created"]
    assert [w.payload["invoice"]["lago_id"] for w in hooks] == [invoice["lago_id"]]


async def test_a_subscription_started_within_the_period_is_prorated_by_days() -> None:
    """subscription_service_spec.rb: monthly, "when subscription start is on any other day"
    (2022-03-15): 17 of 31 days of 100 → 55 cents."""
    state = EmulatorState(api_url="http://lago.test")
    _, control = await _setup(state, started="2022-03-15T00:00:00Z")

    [invoice] = (await control.post("/_emulator/close_period", json={})).json()["invoices"]

    assert _fees(invoice)["basic"] == (55, "1.0")


async def test_pay_in_advance_bills_the_next_periods_full_amount() -> None:
    """subscription_service_spec.rb: "when subscription is created in the past", "when plan
    is pay in advance", "creates a full amount fee"; the fee is for the period starting."""
    state = EmulatorState(api_url="http://lago.test")
    _, control = await _setup(state, started="2022-01-01T00:01:00Z", in_advance=True)

    [invoice] = (await control.post("/_emulator/close_period", json={})).json()["invoices"]

    assert _fees(invoice)["basic"] == (100, "1.0")
    [period] = invoice["billing_periods"]
    assert period["subscription_from_datetime"] == "2022-04-01T00:00:00Z"
    assert period["subscription_to_datetime"] == "2022-04-30T23:59:59Z"


async def test_pay_in_advance_charges_are_not_on_the_periodic_invoice() -> None:
    """calculate_fees_service_spec.rb: charges ``pay_in_advance`` are billed as events come
    (``.not(pay_in_advance: true, ...)``), not by the billing run."""
    state = EmulatorState(api_url="http://lago.test")
    lago, control = await _setup(state, started="2022-01-01T00:01:00Z", charge_in_advance=True)
    await _events(lago, "2022-03-02T10:00:00")

    [invoice] = (await control.post("/_emulator/close_period", json={})).json()["invoices"]

    assert _fees(invoice) == {"basic": (100, "1.0")}


async def test_the_next_period_starts_and_its_fee_is_never_billed_twice() -> None:
    """The next period's charges start after the close; a second close in the same planned
    period bills only the new events (a period's subscription fee is invoiced once)."""
    state = EmulatorState(api_url="http://lago.test")
    lago, control = await _setup(state, started="2022-01-01T00:01:00Z")
    await _events(lago, "2022-03-02T10:00:00")
    await control.post("/_emulator/close_period", json={})
    usage = await lago.get(
        "/customers/acme/current_usage", params={"external_subscription_id": "sub_id"}
    )
    await _events(lago, "2022-03-31T12:00:01")

    [second] = (await control.post("/_emulator/close_period", json={})).json()["invoices"]

    assert usage.json()["customer_usage"]["amount_cents"] == 0
    assert usage.json()["customer_usage"]["from_datetime"] == "2022-03-31T12:00:00Z"
    assert _fees(second) == {"calls": (10, "1.0")}


async def test_a_grace_period_leaves_the_invoice_in_draft() -> None:
    """invoices/subscription_service.rb: within the customer's grace period the invoice is a
    draft and ``invoice.drafted`` is sent."""
    state = EmulatorState(api_url="http://lago.test")
    _, control = await _setup(state, started="2022-01-01T00:01:00Z")
    state.customers["acme"]["billing_configuration"]["invoice_grace_period"] = 3

    [invoice] = (await control.post("/_emulator/close_period", json={})).json()["invoices"]

    assert invoice["status"] == "draft"
    assert [w.webhook_type for w in state.webhooks_pending][-1] == "invoice.drafted"


async def test_one_customer_only_and_an_unknown_customer_is_404() -> None:
    """``external_customer_id`` limits the run to that customer's subscriptions."""
    state = EmulatorState(api_url="http://lago.test")
    _, control = await _setup(state, started="2022-01-01T00:01:00Z")

    other = await control.post("/_emulator/close_period", json={"external_customer_id": "x"})
    mine = await control.post("/_emulator/close_period", json={"external_customer_id": "acme"})

    assert other.status_code == 404
    assert other.json()["code"] == "customer_not_found"
    assert [i["customer"]["external_id"] for i in mine.json()["invoices"]] == ["acme"]


async def test_the_invoice_and_its_webhook_follow_lagos_contract() -> None:
    """The invoice (fees, ``billing_periods``) as ``GET /invoices/{id}`` answers it, and its
    ``invoice.created`` webhook, match Lago's OpenAPI spec."""
    spec = load_spec()
    if spec is None:
        pytest.skip("no Lago OpenAPI spec")
    from lago.emulator.contract import validate_webhook

    state = EmulatorState(api_url="http://lago.test")
    lago, control = await _setup(state, started="2022-01-01T00:01:00Z")
    await _events(lago, "2022-03-02T10:00:00")
    [invoice] = (await control.post("/_emulator/close_period", json={})).json()["invoices"]

    shown = await lago.get(f"/invoices/{invoice['lago_id']}")
    [hook] = [w for w in state.webhooks_pending if w.webhook_type == "invoice.created"]
    validate_webhook(hook.webhook_type, hook.headers, hook.body)

    assert shown.status_code == 200
    assert state.contract_violations == []
