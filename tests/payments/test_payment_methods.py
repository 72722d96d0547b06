"""A customer's payment methods when the gateway collects: its Stripe cards in Lago's shape."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from lago_python_client import mixins
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import Customer
from lago_python_client.services.request import make_headers

from gateway.customers.payment_methods import METHOD_ID_NAMESPACE
from lago.emulator import EmulatorState
from tests.collection.stripe_fake import API_KEY, FakeStripe
from tests.conftest import Gateway, make_settings, running_gateway
from tests.support.served import call, served

__all__ = ["served"]


@pytest.fixture
def stripe() -> FakeStripe:
    return FakeStripe()


@pytest.fixture
async def gateway(
    database_url: str, emulator: EmulatorState, stripe: FakeStripe
) -> AsyncIterator[Gateway]:
    """The gateway collecting through a fake Stripe (``served`` serves this one)."""
    settings = make_settings(
        database_url, stripe_secret_key=API_KEY, stripe_api_base="https://stripe.test"
    )
    async with running_gateway(settings, emulator, stripe_transport=stripe) as gw:
        yield gw


async def test_the_sdk_lists_the_stripe_customers_cards(
    gateway: Gateway, served: str, stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await gateway.key("billing:read", "billing:write")
    client = Client(api_key=key, api_url=served)
    stripe_id = stripe.add_customer("ap@acme.test")
    older = stripe.add_card(stripe_id)
    newer = stripe.add_card(stripe_id, default=False)
    stripe.payment_methods[newer]["created"] += 10
    billing = {"provider_customer_id": stripe_id}
    await call(
        client.customers.create,
        Customer(external_id="acme", currency="USD", billing_configuration=billing),
    )
    original = mixins.send_get_request  # the SDK's customer lists send no key: add it

    def send(url: str, **kwargs: object) -> object:
        kwargs.setdefault("headers", make_headers(api_key=key))
        return original(url, **kwargs)

    monkeypatch.setattr(mixins, "send_get_request", send)
    listed = await call(client.customer_payment_methods.find_all, "acme")
    methods = [(m.provider_method_id, m.is_default) for m in listed["payment_methods"]]
    assert methods == [(newer, False), (older, True)]
    first = listed["payment_methods"][0]
    assert first.lago_id == str(uuid.uuid5(METHOD_ID_NAMESPACE, newer))
    assert (first.payment_provider_type, first.payment_provider_code) == ("stripe", None)
    assert listed["meta"]["total_count"] == 2
    with pytest.raises(LagoApiError) as unknown:
        await call(client.customer_payment_methods.find_all, "nobody")
    assert unknown.value.response["code"] == "customer_not_found"


async def test_pages_and_a_customer_without_a_stripe_link(
    gateway: Gateway, stripe: FakeStripe
) -> None:
    writer = await gateway.headers("billing:write")
    stripe_id = stripe.add_customer()
    for _ in range(3):
        stripe.add_card(stripe_id)
    body = {
        "customer": {
            "external_id": "acme",
            "currency": "USD",
            "billing_configuration": {"provider_customer_id": stripe_id},
        }
    }
    assert (await gateway.client.post("/api/v1/customers", json=body, headers=writer)).is_success
    reader = await gateway.headers("billing:read")
    path = "/api/v1/customers/acme/payment_methods?per_page=2&page=2"
    second = (await gateway.client.get(path, headers=reader)).json()
    assert len(second["payment_methods"]) == 1
    assert second["meta"] == {
        "current_page": 2,
        "next_page": None,
        "prev_page": 1,
        "total_pages": 2,
        "total_count": 3,
    }
    gateway.emulator.customers["bare"] = dict(
        gateway.emulator.customers["acme"], external_id="bare"
    )
    bare = await gateway.client.get("/api/v1/customers/bare/payment_methods", headers=reader)
    assert bare.json()["payment_methods"] == []  # Lago's answer: no link, nothing in Stripe
