"""``lago-python-client`` reads, event lookup, the cancellation undo and the calls the gateway
refuses, each driven through the SDK against the served gateway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lago_python_client import mixins
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import AppliedCoupon, Customer, Event, Subscription, Wallet
from lago_python_client.services.request import make_headers

from lago.emulator.payments import record_payment
from tests.billing.support import BASIC, audit_rows, seed_catalog
from tests.conftest import Gateway
from tests.support.served import call, served

__all__ = ["served"]

CHILD_LISTS = (
    "customer_invoices",
    "customer_wallets",
    "customer_payments",
    "customer_subscriptions",
    "customer_applied_coupons",
    "customer_payment_requests",
    "customer_payment_methods",
)


@pytest.fixture
def keyed_child_lists(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """lago-python-client 1.55's ``FindAllChildrenCommandMixin.find_all`` sends no
    ``Authorization`` header (Lago and the gateway answer 401): make it send ``api_key``, as
    every other SDK call does."""

    def install(api_key: str) -> None:
        original = mixins.send_get_request

        def send(url: str, **kwargs: Any) -> Any:
            kwargs.setdefault("headers", make_headers(api_key=api_key))
            return original(url, **kwargs)

        monkeypatch.setattr(mixins, "send_get_request", send)

    return install


async def _acme(gateway: Gateway, served: str) -> Client:
    """A customer ``acme`` on ``basic`` (``sub_acme``); the SDK client with read and write."""
    await seed_catalog(gateway)
    client = Client(api_key=await gateway.key("billing:read", "billing:write"), api_url=served)
    await call(client.customers.create, Customer(external_id="acme", currency="USD"))
    await call(
        client.subscriptions.create,
        Subscription(external_customer_id="acme", plan_code=BASIC, external_id="sub_acme"),
    )
    return client


async def test_the_sdks_customer_lists_answer_through_the_gateway(
    gateway: Gateway, served: str, keyed_child_lists: Callable[[str], None]
) -> None:
    client = await _acme(gateway, served)
    keyed_child_lists(client.api_key)
    lago = gateway.emulator
    invoice = lago.issue_invoice("acme", 1500)
    payment = record_payment(lago, invoice["lago_id"], 1500)
    wallet = await call(
        client.wallets.create,
        Wallet(external_customer_id="acme", currency="USD", rate_amount="1", name="Tokens"),
    )
    coupon = AppliedCoupon(external_customer_id="acme", coupon_code="welcome")
    applied = await call(client.applied_coupons.create, coupon)
    found = {name: await call(getattr(client, name).find_all, "acme") for name in CHILD_LISTS}
    assert [i.lago_id for i in found["customer_invoices"]["invoices"]] == [invoice["lago_id"]]
    assert [p.lago_id for p in found["customer_payments"]["payments"]] == [payment["lago_id"]]
    subscriptions = found["customer_subscriptions"]["subscriptions"]
    assert [(s.external_id, s.status) for s in subscriptions] == [("sub_acme", "active")]
    assert [w.lago_id for w in found["customer_wallets"]["wallets"]] == [wallet.lago_id]
    coupons = found["customer_applied_coupons"]["applied_coupons"]
    assert [c.lago_id for c in coupons] == [applied.lago_id]
    for name, root in (
        ("customer_payment_requests", "payment_requests"),
        ("customer_payment_methods", "payment_methods"),
    ):
        assert found[name][root] == [] and found[name]["meta"]["total_count"] == 0
    with pytest.raises(LagoApiError) as unknown:
        await call(client.customer_invoices.find_all, "nobody")
    assert unknown.value.status_code == 404
    assert unknown.value.response["code"] == "customer_not_found"


async def test_the_unpatched_sdk_sends_no_key_for_customer_lists(
    gateway: Gateway, served: str
) -> None:
    client = await _acme(gateway, served)
    with pytest.raises(LagoApiError) as raised:
        await call(client.customer_invoices.find_all, "acme")
    assert raised.value.status_code == 401


async def test_payments_and_past_usage_through_the_sdk(gateway: Gateway, served: str) -> None:
    client = await _acme(gateway, served)
    lago = gateway.emulator
    invoice = lago.issue_invoice("acme", 900)
    payment = record_payment(lago, invoice["lago_id"], 900)
    listed = await call(client.payments.find_all, {"external_customer_id": "acme"})
    assert [(p.lago_id, p.amount_cents) for p in listed["payments"]] == [(payment["lago_id"], 900)]
    one = await call(client.payments.find, payment["lago_id"])
    assert one.invoice_ids == [invoice["lago_id"]] and one.payment_status == "succeeded"
    with pytest.raises(LagoApiError) as missing:
        await call(client.payments.find, "not-a-uuid")
    assert (missing.value.status_code, missing.value.response["code"]) == (
        404,
        "payment_not_found",
    )
    charge = lago.plans[BASIC]["charges"][0]
    fee = {
        "amount_cents": 25,
        "units": "5.0",
        "lago_charge_id": charge["lago_id"],
        "external_subscription_id": "sub_acme",
        "item": {"type": "charge", "code": "photo_generation", "name": "Photos"},
    }
    billed = lago.issue_invoice("acme", 0, fees=[fee])
    lago.invoices[billed["lago_id"]]["billing_periods"] = [
        {
            "external_subscription_id": "sub_acme",
            "charges_from_datetime": "2025-08-01T00:00:00Z",
            "charges_to_datetime": "2025-08-31T23:59:59Z",
        }
    ]
    past = await call(client.customers.past_usage, "acme", "sub_acme", {"periods_count": 3})
    [period] = past["usage_periods"]
    assert (period.lago_invoice_id, period.amount_cents) == (billed["lago_id"], 25)
    assert [(c.units, c.billable_metric.code) for c in period.charges_usage] == [
        ("5.0", "photo_generation")
    ]


async def test_events_find_answers_lago_or_the_pending_copy(gateway: Gateway, served: str) -> None:
    client = await _acme(gateway, served)
    writer = Client(api_key=await gateway.key("events:write"), api_url=served)
    event = Event(
        transaction_id="tx-pending",
        external_subscription_id="sub_acme",
        code="photo_generation",
        timestamp=1756684800,
        properties={"n": 1},
    )
    accepted = await call(writer.events.create, event)
    pending = await call(client.events.find, "tx-pending")
    # The gateway's copy, as accepted (created_at: when it was stored): Lago has none yet.
    assert pending.dict(exclude={"created_at"}) == accepted.dict(exclude={"created_at"})
    assert pending.created_at is not None
    assert (pending.lago_subscription_id, pending.lago_customer_id) == (None, None)
    assert pending.timestamp == "2025-09-01T00:00:00.000Z"
    body = {
        "event": {
            "transaction_id": "tx-lago",
            "external_subscription_id": "sub_acme",
            "code": "photo_generation",
            "timestamp": 1756684800,
        }
    }
    await gateway.runtime.lago.call("POST", "/events", json=body)
    known = await call(client.events.find, "tx-lago")
    assert known.lago_subscription_id == gateway.emulator.subscription("sub_acme")["lago_id"]
    with pytest.raises(LagoApiError) as unknown:
        await call(client.events.find, "tx-nowhere")
    assert (unknown.value.status_code, unknown.value.response["code"]) == (404, "event_not_found")
    with pytest.raises(LagoApiError) as scope:
        await call(writer.events.find, "tx-pending")
    assert scope.value.status_code == 403


class _ClearEnd:
    """``{"ending_at": null}``: the SDK's models drop every None (``exclude_none``)."""

    def dict(self, **_: Any) -> dict[str, Any]:
        return {"ending_at": None}


async def test_a_scheduled_end_is_undone_with_a_null_ending_at(
    gateway: Gateway, served: str
) -> None:
    client = await _acme(gateway, served)
    lago = gateway.emulator
    ending = "2099-01-31T00:00:00Z"
    ends = await call(client.subscriptions.update, Subscription(ending_at=ending), "sub_acme")
    assert ends.ending_at == ending and lago.subscription("sub_acme")["ending_at"] == ending
    undone = await call(client.subscriptions.update, _ClearEnd(), "sub_acme")
    assert undone.ending_at is None and lago.subscription("sub_acme")["ending_at"] is None
    rows = await audit_rows(gateway, "subscriptions.update")
    assert [(r.outcome, r.detail) for r in rows] == [
        ("success", None),
        ("success", {"cleared": ["ending_at"]}),
    ]


async def test_calls_the_gateway_does_not_serve_say_what_to_use(
    gateway: Gateway, served: str
) -> None:
    client = await _acme(gateway, served)
    expected = {
        client.customers.portal_url: "POST /gateway/customers/acme/portal",
        client.customers.checkout_url: "POST /gateway/customers/acme/checkout",
    }
    for method, use in expected.items():
        with pytest.raises(LagoApiError) as refused:
            await call(method, "acme")
        assert refused.value.status_code == 405
        assert refused.value.response["code"] == "not_served_by_gateway"
        assert refused.value.response["error_details"]["use"] == use
    with pytest.raises(LagoApiError) as key:
        await call(client.webhooks.public_key)
    assert key.value.response["code"] == "not_served_by_gateway"
    assert "/gateway/endpoints/" in key.value.response["error_details"]["use"]
    rows = await audit_rows(gateway, "customers.checkout_url")
    assert [(r.outcome, r.status, r.upstream) for r in rows] == [("rejected", 405, None)]


async def test_reads_need_billing_read(gateway: Gateway, served: str) -> None:
    await _acme(gateway, served)
    writer = Client(api_key=await gateway.key("events:write"), api_url=served)
    for method, args in (
        (writer.customers.past_usage, ("acme", "sub_acme")),
        (writer.payments.find_all, ()),
        (writer.customers.portal_url, ("acme",)),
    ):
        with pytest.raises(LagoApiError) as refused:
            await call(method, *args)
        assert refused.value.status_code == 403
    reader = Client(api_key=await gateway.key("billing:read"), api_url=served)
    with pytest.raises(LagoApiError) as write:
        await call(reader.subscriptions.update, _ClearEnd(), "sub_acme")
    assert write.value.status_code == 403
