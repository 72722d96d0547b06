"""The Stripe client's wire contract (respx) and its behaviour over the fake Stripe."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import httpx
import orjson
import pytest
import respx

from gateway.integrations.stripe.client import (
    STRIPE_API_VERSION,
    StripeClient,
    StripeRejected,
    StripeUnavailable,
)
from tests.integrations.fake_stripe import API_KEY, FakeStripe, customer_object

BASE = "https://stripe.test"


async def test_create_customer_sends_stripes_exact_request_and_reads_its_answer() -> None:
    answer = customer_object(
        "cus_Q1w2e3",
        {
            "email": "a@acme.test",
            "name": "Acme",
            "metadata": {"external_id": "acme", "tier": "gold"},
        },
    )
    with respx.mock(assert_all_called=True) as router:
        route = router.post(f"{BASE}/v1/customers").mock(
            return_value=httpx.Response(200, json=answer, headers={"Request-Id": "req_1"})
        )
        client = StripeClient("sk_test_wire", base_url=BASE, timeout=3)
        try:
            customer = await client.create_customer(
                external_id="acme",
                idempotency_key="customer-create-acme",
                email="a@acme.test",
                name="Acme",
                metadata={"tier": "gold"},
            )
        finally:
            await client.aclose()
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer sk_test_wire"
    assert request.headers["idempotency-key"] == "customer-create-acme"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["stripe-version"] == STRIPE_API_VERSION
    assert dict(parse_qsl(request.content.decode())) == {
        "email": "a@acme.test",
        "name": "Acme",
        "metadata[tier]": "gold",
        "metadata[external_id]": "acme",
    }
    assert customer.id == "cus_Q1w2e3"
    assert customer.email == "a@acme.test"
    assert customer.metadata == {"external_id": "acme", "tier": "gold"}


async def test_every_request_carries_the_pinned_api_version_not_the_sdks() -> None:
    intent = {"id": "pi_1", "object": "payment_intent", "status": "succeeded"}
    with respx.mock(assert_all_called=True) as router:
        get = router.get(f"{BASE}/v1/payment_intents/pi_1").mock(
            return_value=httpx.Response(200, json=intent)
        )
        post = router.post(f"{BASE}/v1/payment_intents/pi_1/cancel").mock(
            return_value=httpx.Response(200, json={**intent, "status": "canceled"})
        )
        client = StripeClient("sk_test_wire", base_url=BASE)
        try:
            read = await client.retrieve_payment_intent("pi_1")
            canceled = await client.cancel_payment_intent("pi_1", idempotency_key="k-cancel")
        finally:
            await client.aclose()
    assert STRIPE_API_VERSION == "2023-08-16"  # the version of ../shared/stripe-openapi.yaml
    for route in (get, post):
        assert route.calls.last.request.headers["stripe-version"] == "2023-08-16"
    assert (read["status"], canceled["status"]) == ("succeeded", "canceled")


async def test_stripe_4xx_is_rejected_with_stripes_code_and_param() -> None:
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "param": "id",
            "message": "No such customer: 'cus_nope'",
        }
    }
    with respx.mock() as router:
        router.get(f"{BASE}/v1/customers/cus_nope").mock(
            return_value=httpx.Response(404, json=body)
        )
        client = StripeClient("sk_test_wire", base_url=BASE, max_network_retries=0)
        try:
            with pytest.raises(StripeRejected) as raised:
                await client.retrieve_customer("cus_nope")
        finally:
            await client.aclose()
    assert (raised.value.status, raised.value.code, raised.value.param) == (
        404,
        "resource_missing",
        "id",
    )


async def test_stripe_5xx_and_connection_errors_are_unavailable() -> None:
    with respx.mock() as router:
        router.get(f"{BASE}/v1/customers/cus_1").mock(
            return_value=httpx.Response(500, json={"error": {"type": "api_error", "message": "x"}})
        )
        router.get(f"{BASE}/v1/customers/cus_2").mock(side_effect=httpx.ConnectError("down"))
        client = StripeClient("sk_test_wire", base_url=BASE, max_network_retries=0)
        try:
            for customer_id in ("cus_1", "cus_2"):
                with pytest.raises(StripeUnavailable):
                    await client.retrieve_customer(customer_id)
        finally:
            await client.aclose()


async def test_same_idempotency_key_yields_the_same_customer_even_concurrently() -> None:
    fake = FakeStripe()
    client = StripeClient(API_KEY, base_url=BASE, transport=fake)
    try:
        created = await asyncio.gather(
            *[
                client.create_customer(
                    external_id="acme", idempotency_key="customer-create-acme", email="a@acme.test"
                )
                for _ in range(5)
            ]
        )
        assert {c.id for c in created} == set(fake.customers)
        assert len(fake.customers) == 1
        other = await client.create_customer(
            external_id="zeta", idempotency_key="customer-create-zeta"
        )
        assert other.id != created[0].id
    finally:
        await client.aclose()


async def test_reusing_a_key_with_other_parameters_is_stripes_idempotency_error() -> None:
    fake = FakeStripe()
    client = StripeClient(API_KEY, base_url=BASE, transport=fake)
    try:
        await client.create_customer(external_id="acme", idempotency_key="k", email="a@acme.test")
        with pytest.raises(StripeRejected) as raised:
            await client.create_customer(
                external_id="acme", idempotency_key="k", email="b@acme.test"
            )
    finally:
        await client.aclose()
    assert raised.value.error_type == "idempotency_error"


async def test_a_deleted_customer_reads_as_missing() -> None:
    fake = FakeStripe()
    customer_id = fake.add_customer()
    fake.delete_customer(customer_id)
    client = StripeClient(API_KEY, base_url=BASE, transport=fake)
    try:
        with pytest.raises(StripeRejected) as raised:
            await client.retrieve_customer(customer_id)
    finally:
        await client.aclose()
    assert raised.value.code == "resource_missing"


def test_the_fake_answers_stripes_customer_shape() -> None:
    shape = customer_object("cus_x", {})
    assert shape["object"] == "customer"
    assert orjson.loads(orjson.dumps(shape))["invoice_settings"]["default_payment_method"] is None
