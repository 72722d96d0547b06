"""``lago-python-client`` works against the gateway by changing only its base URL and key."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import (
    AppliedCoupon,
    Customer,
    Subscription,
    Wallet,
    WalletTransaction,
)

from tests.billing.support import BASIC, PREMIUM, audit_rows, seed_catalog
from tests.conftest import Gateway
from tests.support.served import call, served

__all__ = ["served"]


async def test_the_lago_sdk_drives_the_whole_customer_lifecycle_through_the_gateway(
    gateway: Gateway, served: str
) -> None:
    await seed_catalog(gateway)
    lago = gateway.emulator
    key = await gateway.key("billing:read", "billing:write")
    client = Client(api_key=key, api_url=served)

    customer = await call(
        client.customers.create,
        Customer(external_id="acme", name="Acme", email="billing@acme.test", currency="USD"),
    )
    assert customer is not None and customer.lago_id == lago.customers["acme"]["lago_id"]
    assert lago.customers["acme"]["email"] == "billing@acme.test"

    await call(
        client.subscriptions.create,
        Subscription(external_customer_id="acme", plan_code=BASIC, external_id="sub_acme"),
    )
    assert lago.subscription("sub_acme")["plan_code"] == BASIC

    upgraded = await call(
        client.subscriptions.create,
        Subscription(external_customer_id="acme", plan_code=PREMIUM, external_id="sub_acme"),
    )
    assert upgraded is not None and upgraded.plan_code == PREMIUM
    assert lago.subscription("sub_acme")["plan_code"] == PREMIUM
    assert lago.subscription("sub_acme", "terminated")["plan_code"] == BASIC

    downgraded = await call(
        client.subscriptions.create,
        Subscription(external_customer_id="acme", plan_code=BASIC, external_id="sub_acme"),
    )
    assert downgraded is not None and downgraded.next_plan_code == BASIC
    assert lago.subscription("sub_acme")["plan_code"] == PREMIUM
    assert lago.subscription("sub_acme", "pending")["plan_code"] == BASIC

    usage = await call(client.customers.current_usage, "acme", "sub_acme")
    assert usage.currency == "USD" and usage.total_amount_cents == 0

    wallet = await call(
        client.wallets.create,
        Wallet(
            external_customer_id="acme",
            currency="USD",
            rate_amount="1",
            name="Tokens",
            granted_credits="10",
        ),
    )
    assert wallet is not None and lago.wallets[wallet.lago_id]["external_customer_id"] == "acme"
    topped = await call(
        client.wallet_transactions.create,
        WalletTransaction(wallet_id=wallet.lago_id, paid_credits="20", granted_credits="5"),
    )
    statuses = {(t.transaction_status, t.status) for t in topped["wallet_transactions"]}
    assert statuses == {("purchased", "pending"), ("granted", "settled")}
    assert lago.wallets[wallet.lago_id]["credits_balance"] == "15.0"

    applied = await call(
        client.applied_coupons.create,
        AppliedCoupon(external_customer_id="acme", coupon_code="welcome"),
    )
    assert applied is not None and lago.applied_coupons[applied.lago_id]["status"] == "active"

    terminated = await call(client.subscriptions.destroy, "sub_acme")
    assert terminated.status == "terminated"
    assert lago.subscription("sub_acme") is None

    rows = await audit_rows(gateway)
    assert [(r.action, r.outcome, r.upstream) for r in rows] == [
        ("customers.upsert", "success", "lago"),
        ("subscriptions.create", "success", "lago"),
        ("subscriptions.create", "success", "lago"),
        ("subscriptions.create", "success", "lago"),
        ("wallets.create", "success", "lago"),
        ("wallet_transactions.create", "success", "lago"),
        ("applied_coupons.create", "success", "lago"),
        ("subscriptions.terminate", "success", "lago"),
    ]
    assert {r.actor for r in rows} == {rows[0].actor}


async def test_the_sdk_raises_its_usual_error_with_lagos_code(
    gateway: Gateway, served: str
) -> None:
    await seed_catalog(gateway)
    client = Client(api_key=await gateway.key("billing:write"), api_url=served)
    with pytest.raises(LagoApiError) as raised:
        await call(
            client.subscriptions.create,
            Subscription(external_customer_id="acme", plan_code="platinum", external_id="sub_x"),
        )
    assert raised.value.status_code == 404
    assert raised.value.response["code"] == "plan_not_found"
    with pytest.raises(LagoApiError) as missing:
        await call(client.customers.create, Customer(external_id=""))
    assert missing.value.status_code == 422
    assert missing.value.response["error_details"] == {"external_id": ["value_is_mandatory"]}
