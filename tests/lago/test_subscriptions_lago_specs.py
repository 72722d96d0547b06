"""Lago's spec/requests/api/v1/subscriptions_controller_spec.rb (and its shared examples in
spec/support/shared_examples/subscription_index.rb), ported to the emulator.

Each test names the ``describe``/``context``/``it`` it ports. Not ported: plan overrides,
usage thresholds, entitlements, payment methods and pre-authorization, activation rules,
invoice custom sections, fixed charges, billing entities, progressive billing,
``consolidate_invoice`` and ``purchase_order_number``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("catalog")]


def body(**params: Any) -> dict[str, Any]:
    return {"subscription": {"external_customer_id": "acme", "plan_code": "basic", **params}}


async def subscribe(lago: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await lago.post("/subscriptions", json=body(**params))
    assert response.status_code == 200, response.text
    subscription: dict[str, Any] = response.json()["subscription"]
    return subscription


async def listen(lago: httpx.AsyncClient) -> None:
    endpoint = {"webhook_endpoint": {"webhook_url": "http://hooks.test/lago"}}
    assert (await lago.post("/webhook_endpoints", json=endpoint)).status_code == 200


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_create_returns_a_success(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: POST /api/v1/subscriptions, it "returns a success"
    (the fields without plan overrides)."""
    customer = (await lago.post("/customers", json={"customer": {"external_id": "acme"}})).json()
    starts, ends = in_days(0), in_days(365)

    created = await subscribe(
        lago,
        name="subscription name",
        external_id="sub-1",
        billing_time="anniversary",
        subscription_at=starts,
        ending_at=ends,
    )

    assert created["external_customer_id"] == "acme"
    assert created["lago_customer_id"] == customer["customer"]["lago_id"]
    expected = {
        "plan_code": "basic",
        "plan_amount_cents": 1000,
        "plan_amount_currency": "USD",
        "status": "active",
        "name": "subscription name",
        "billing_time": "anniversary",
        "subscription_at": starts,
        "ending_at": ends,
        "previous_plan_code": None,
        "next_plan_code": None,
        "downgrade_plan_date": None,
    }
    assert {key: created[key] for key in expected} == expected
    assert created["started_at"] and created["plan"]["code"] == "basic"


async def test_integer_ids_and_name_become_strings(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """subscriptions_controller_spec.rb: POST, context "with external_customer_id, external_id
    and name as integer", it "returns a success", it "creates a new customer"."""
    response = await lago.post(
        "/subscriptions",
        json={
            "subscription": {
                "external_customer_id": 123,
                "plan_code": "basic",
                "name": 456,
                "external_id": 789,
            }
        },
    )

    assert response.status_code == 200
    created = response.json()["subscription"]
    assert (created["external_customer_id"], created["name"], created["external_id"]) == (
        "123",
        "456",
        "789",
    )
    assert list(state.customers) == ["123"]


async def test_without_external_customer_id_is_value_is_mandatory(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """subscriptions_controller_spec.rb: POST, context "without external_customer_id",
    it "returns an unprocessable_entity error"."""
    response = await lago.post(
        "/subscriptions",
        json={"subscription": {"plan_code": "basic", "name": "n", "external_id": "sub-1"}},
    )

    assert response.status_code == 422
    assert response.json()["error_details"] == {"external_customer_id": ["value_is_mandatory"]}
    assert state.subscriptions == {}


async def test_without_external_id_is_value_is_mandatory(lago: httpx.AsyncClient) -> None:
    """Subscription model: ``validates :external_id, presence: true`` (CreateService)."""
    response = await lago.post("/subscriptions", json=body())

    assert response.status_code == 422
    assert response.json()["error_details"] == {"external_id": ["value_is_mandatory"]}


async def test_invalid_plan_code_is_404(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: POST, context "with invalid plan code",
    it "returns a not_found error"."""
    response = await lago.post("/subscriptions", json=body(plan_code="basic-invalid"))

    assert response.status_code == 404
    assert response.json()["code"] == "plan_not_found"


async def test_invalid_subscription_at_is_422(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: POST, context "with invalid subscription_at",
    it "returns an unprocessable_entity error"."""
    response = await lago.post(
        "/subscriptions", json=body(external_id="sub-1", subscription_at="hello")
    )

    assert response.status_code == 422
    assert response.json()["error_details"] == {"subscription_at": ["invalid_date"]}


@pytest.mark.parametrize("ending_at", ["hello", "2020-01-01T00:00:00Z"])
async def test_an_ending_at_in_the_past_or_unreadable_is_invalid_date(
    lago: httpx.AsyncClient, ending_at: str
) -> None:
    """Subscriptions::ValidateService#valid_ending_at?: after today and after the start."""
    response = await lago.post("/subscriptions", json=body(external_id="s", ending_at=ending_at))

    assert response.status_code == 422
    assert response.json()["error_details"] == {"ending_at": ["invalid_date"]}


async def test_subscription_at_is_returned_as_given(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: POST, context "with legacy subscription_date",
    it "returns a success"."""
    starts = in_days(0)
    created = await subscribe(
        lago, external_id="sub-1", billing_time="anniversary", subscription_at=starts
    )

    assert created["subscription_at"] == starts
    assert created["status"] == "active" and created["billing_time"] == "anniversary"


async def test_an_active_external_id_of_another_customer_is_value_already_exist(
    lago: httpx.AsyncClient,
) -> None:
    """Subscriptions::CreateService: ``external_id: ["value_already_exist"]``."""
    await subscribe(lago, external_id="sub-1")

    response = await lago.post(
        "/subscriptions", json=body(external_customer_id="other", external_id="sub-1")
    )

    assert response.status_code == 422
    assert response.json()["error_details"] == {"external_id": ["value_already_exist"]}


async def test_terminate_a_subscription(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: DELETE /api/v1/subscriptions/:external_id,
    it "terminates a subscription"."""
    created = await subscribe(lago, external_id="sub.1")

    response = await lago.delete("/subscriptions/sub.1")

    assert response.status_code == 200
    ended = response.json()["subscription"]
    assert ended["lago_id"] == created["lago_id"]
    assert ended["status"] == "terminated" and ended["terminated_at"]
    assert ended["on_termination_credit_note"] is None
    assert ended["on_termination_invoice"] == "generate"


@pytest.mark.parametrize("choice", ["generate", "skip"])
async def test_terminate_with_on_termination_invoice(lago: httpx.AsyncClient, choice: str) -> None:
    """subscriptions_controller_spec.rb: DELETE, context "with on_termination_invoice
    parameter", contexts "when on_termination_invoice is generate" / "is skip"."""
    await subscribe(lago, external_id="sub-1")

    response = await lago.delete("/subscriptions/sub-1", params={"on_termination_invoice": choice})

    assert response.json()["subscription"]["on_termination_invoice"] == choice


async def test_an_invalid_on_termination_invoice_is_422_and_terminates_nothing(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """subscriptions_controller_spec.rb: DELETE, context "with invalid on_termination_invoice
    value", it "returns validation error"."""
    await subscribe(lago, external_id="sub-1")

    response = await lago.delete(
        "/subscriptions/sub-1", params={"on_termination_invoice": "invalid"}
    )

    assert response.status_code == 422
    assert response.json()["error_details"] == {"on_termination_invoice": ["invalid_value"]}
    assert state.subscription("sub-1") is not None


async def test_pay_in_arrears_ignores_on_termination_credit_note(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: DELETE, context "when plan is pay_in_arrears",
    it "terminates subscription but ignores on_termination_credit_note"."""
    await subscribe(lago, external_id="sub-1")

    response = await lago.delete(
        "/subscriptions/sub-1", params={"on_termination_credit_note": "refund"}
    )

    assert response.status_code == 200
    assert response.json()["subscription"]["on_termination_credit_note"] is None


async def pay_in_advance_plan(lago: httpx.AsyncClient) -> None:
    plan = {
        "name": "Advance",
        "code": "advance",
        "interval": "monthly",
        "amount_cents": 1000,
        "amount_currency": "USD",
        "pay_in_advance": True,
    }
    assert (await lago.post("/plans", json={"plan": plan})).status_code == 200


@pytest.mark.parametrize(
    ("params", "credit_note", "invoice"),
    [
        ({"on_termination_credit_note": "skip"}, "skip", "generate"),
        ({"on_termination_credit_note": "refund"}, "refund", "generate"),
        ({"on_termination_credit_note": "skip", "on_termination_invoice": "skip"}, "skip", "skip"),
    ],
)
async def test_pay_in_advance_keeps_on_termination_credit_note(
    lago: httpx.AsyncClient, params: dict[str, str], credit_note: str, invoice: str
) -> None:
    """subscriptions_controller_spec.rb: DELETE, context "when plan is pay_in_advance",
    contexts "when on_termination_credit_note is skip" / "is refund", context "with both
    on_termination_credit_note and on_termination_invoice parameters"."""
    await pay_in_advance_plan(lago)
    await subscribe(lago, external_id="sub-1", plan_code="advance")

    response = await lago.delete("/subscriptions/sub-1", params=params)

    ended = response.json()["subscription"]
    assert (ended["on_termination_credit_note"], ended["on_termination_invoice"]) == (
        credit_note,
        invoice,
    )


async def test_pay_in_advance_invalid_credit_note_is_422(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: DELETE, context "with invalid on_termination_credit_note
    value", it "returns validation error"."""
    await pay_in_advance_plan(lago)
    await subscribe(lago, external_id="sub-1", plan_code="advance")

    response = await lago.delete(
        "/subscriptions/sub-1", params={"on_termination_credit_note": "invalid"}
    )

    assert response.status_code == 422
    assert response.json()["error_details"] == {"on_termination_credit_note": ["invalid_value"]}


async def test_pending_needs_status_to_be_canceled(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """subscriptions_controller_spec.rb: DELETE, context "when subscription is pending",
    it "returns a not found error", context "when status is given", it "cancels the
    subscription"; TerminateService sends ``subscription.terminated`` for it."""
    await listen(lago)
    created = await subscribe(lago, external_id="sub-1", subscription_at=in_days(10))

    missing = await lago.delete("/subscriptions/sub-1")
    canceled = await lago.delete("/subscriptions/sub-1", params={"status": "pending"})

    assert missing.status_code == 404
    assert missing.json()["code"] == "subscription_not_found"
    ended = canceled.json()["subscription"]
    assert ended["lago_id"] == created["lago_id"]
    assert ended["status"] == "canceled" and ended["canceled_at"]
    assert state.webhooks_pending[-1].payload["webhook_type"] == "subscription.terminated"


async def test_canceling_a_scheduled_downgrade_clears_it_on_the_current_one(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """Subscriptions::TerminateService on a pending next subscription: the previous one is
    announced as ``subscription.updated`` and no longer names a next plan."""
    await listen(lago)
    await subscribe(lago, external_id="sub-1", plan_code="pro")
    await subscribe(lago, external_id="sub-1", plan_code="basic")

    await lago.delete("/subscriptions/sub-1", params={"status": "pending"})

    current = (await lago.get("/subscriptions/sub-1")).json()["subscription"]
    assert current["plan_code"] == "pro" and current["next_plan_code"] is None
    types = [w.payload["webhook_type"] for w in state.webhooks_pending[-2:]]
    assert types == ["subscription.updated", "subscription.terminated"]


async def test_terminate_unknown_is_404(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: DELETE, context "with not existing subscription"."""
    response = await lago.delete("/subscriptions/nothing")

    assert response.status_code == 404
    assert response.json()["code"] == "subscription_not_found"


async def test_update_a_pending_subscription_name_and_start(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: PUT /api/v1/subscriptions/:external_id,
    it "updates a subscription" (name, subscription_at; the only record needs no status);
    UpdateService#process_subscription_at_change activates a start moved to the past."""
    await subscribe(lago, external_id="sub.1", subscription_at=in_days(10))

    response = await lago.put(
        "/subscriptions/sub.1",
        json={
            "subscription": {
                "name": "subscription name new",
                "subscription_at": "2022-09-05T12:23:12Z",
            }
        },
    )

    assert response.status_code == 200
    updated = response.json()["subscription"]
    assert updated["name"] == "subscription name new"
    assert updated["subscription_at"] == "2022-09-05T12:23:12Z"
    assert updated["status"] == "active" and updated["started_at"] == "2022-09-05T12:23:12Z"


async def test_update_a_future_start_stays_pending(lago: httpx.AsyncClient) -> None:
    """UpdateService#process_subscription_at_change: a start still in the future stays
    pending."""
    await subscribe(lago, external_id="sub-1", subscription_at=in_days(10))
    later = in_days(20)

    response = await lago.put(
        "/subscriptions/sub-1", json={"subscription": {"subscription_at": later}}
    )

    assert response.json()["subscription"]["status"] == "pending"
    assert response.json()["subscription"]["subscription_at"] == later


async def test_update_unknown_is_404(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: PUT, context "with not existing subscription"."""
    response = await lago.put("/subscriptions/nothing", json={"subscription": {"name": "x"}})

    assert response.status_code == 404
    assert response.json()["code"] == "subscription_not_found"


async def test_update_an_invalid_ending_at_is_422(lago: httpx.AsyncClient) -> None:
    """Subscriptions::UpdateService runs ValidateService: ``ending_at: ["invalid_date"]``."""
    await subscribe(lago, external_id="sub-1")

    response = await lago.put(
        "/subscriptions/sub-1", json={"subscription": {"ending_at": "2020-01-01T00:00:00Z"}}
    )

    assert response.status_code == 422
    assert response.json()["error_details"] == {"ending_at": ["invalid_date"]}


async def test_update_with_several_records_picks_active_or_pending(
    lago: httpx.AsyncClient,
) -> None:
    """subscriptions_controller_spec.rb: PUT, context "with multuple subscriptions",
    it "updates the active subscription", context "with pending params", it "updates the
    pending subscription"."""
    active = await subscribe(lago, external_id="sub-1", plan_code="pro")
    await subscribe(lago, external_id="sub-1", plan_code="basic")

    first = await lago.put("/subscriptions/sub-1", json={"subscription": {"name": "new"}})
    second = await lago.put(
        "/subscriptions/sub-1", json={"subscription": {"name": "next"}, "status": "pending"}
    )

    assert first.json()["subscription"]["lago_id"] == active["lago_id"]
    assert first.json()["subscription"]["name"] == "new"
    assert second.json()["subscription"]["status"] == "pending"
    assert second.json()["subscription"]["name"] == "next"


async def test_show_returns_a_subscription(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: GET /api/v1/subscriptions/:external_id,
    it "returns a subscription", context "when external_id contains dots"."""
    created = await subscribe(lago, external_id="sub.1")

    response = await lago.get("/subscriptions/sub.1")

    assert response.status_code == 200
    assert response.json()["subscription"]["lago_id"] == created["lago_id"]


async def test_show_unknown_is_404(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: GET, context "when subscription does not exist"."""
    response = await lago.get("/subscriptions/nothing")

    assert response.status_code == 404
    assert response.json()["code"] == "subscription_not_found"


async def test_show_with_status_and_the_latest_terminated(lago: httpx.AsyncClient) -> None:
    """subscriptions_controller_spec.rb: GET, context "when status is given", context "when
    there are multiple terminated subscriptions", it "returns the latest terminated
    subscription"."""
    await subscribe(lago, external_id="sub-1")
    await lago.delete("/subscriptions/sub-1")
    latest = await subscribe(lago, external_id="sub-1")
    await lago.delete("/subscriptions/sub-1")
    pending = await subscribe(lago, external_id="sub-1", subscription_at=in_days(5))

    terminated = await lago.get("/subscriptions/sub-1", params={"status": "terminated"})
    shown = await lago.get("/subscriptions/sub-1", params={"status": "pending"})

    assert terminated.json()["subscription"]["lago_id"] == latest["lago_id"]
    assert shown.json()["subscription"]["lago_id"] == pending["lago_id"]


async def test_list_filters(lago: httpx.AsyncClient) -> None:
    """subscription_index.rb shared examples: "when external customer id is given",
    "with plan code", "with currency filter", "with external_id filter", "with terminated
    status"."""
    first = await subscribe(lago, external_id="sub-1")
    second = await subscribe(lago, external_id="sub-2", external_customer_id="other")
    third = await subscribe(lago, external_id="sub-3", plan_code="pro")
    await lago.delete("/subscriptions/sub-3")

    async def ids(**params: Any) -> list[str]:
        found = (await lago.get("/subscriptions", params=params)).json()["subscriptions"]
        return [s["lago_id"] for s in found]

    assert await ids(external_customer_id="other") == [second["lago_id"]]
    assert await ids(plan_code="basic") == [first["lago_id"], second["lago_id"]]
    assert await ids(currency="EUR") == []
    assert await ids(external_id="sub-2") == [second["lago_id"]]
    assert await ids(**{"status[]": "terminated"}) == [third["lago_id"]]


async def test_list_pagination_meta(lago: httpx.AsyncClient) -> None:
    """subscription_index.rb shared examples: "with pagination", it "returns subscriptions
    with correct meta data"."""
    for index in range(3):
        await subscribe(lago, external_id=f"sub-{index}")

    body = (await lago.get("/subscriptions", params={"page": 2, "per_page": 2})).json()

    assert len(body["subscriptions"]) == 1
    assert body["meta"] == {
        "current_page": 2,
        "next_page": None,
        "prev_page": 1,
        "total_pages": 2,
        "total_count": 3,
    }


async def test_list_next_and_previous_plan_codes(lago: httpx.AsyncClient) -> None:
    """subscription_index.rb shared examples: "with next and previous subscriptions",
    it "returns next and previous plan code", it "returns the downgrade plan date"."""
    await subscribe(lago, external_id="sub-1", plan_code="pro")
    await subscribe(lago, external_id="sub-1", plan_code="basic")

    body = (await lago.get("/subscriptions", params={"status[]": ["active", "pending"]})).json()

    by_status = {s["status"]: s for s in body["subscriptions"]}
    assert by_status["active"]["next_plan_code"] == "basic"
    assert by_status["active"]["downgrade_plan_date"]
    assert by_status["pending"]["previous_plan_code"] == "pro"
