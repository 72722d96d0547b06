"""Lago's SDK ``invoices.payment_url`` through a gateway that collects through Stripe (faked
at the transport): the answer is the gateway's own Stripe payment link, in Lago's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import AddOn, Customer, InvoiceFee, InvoiceFeesList, OneOffInvoice
from sqlmodel import select

from gateway.collection.models import Collection
from lago.emulator import EmulatorState
from lago.emulator.billing import set_payment_status
from tests.billing.support import audit_rows, outcomes
from tests.collection.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe
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
    """The gateway collecting through the fake Stripe (workers off)."""
    settings = make_settings(
        database_url,
        stripe_secret_key=API_KEY,
        stripe_api_base="https://stripe.test",
        stripe_webhook_secret=WEBHOOK_SECRET,
        collection_return_url="https://shop.test/billing/done",
    )
    async with running_gateway(settings, emulator, stripe_transport=stripe) as gw:
        yield gw


async def _one_off_invoice(client: Client) -> str:
    await call(
        client.customers.create,
        Customer(external_id="acme", name="Acme", email="ap@acme.test", currency="USD"),
    )
    await call(
        client.add_ons.create,
        AddOn(name="Setup", code="setup", amount_cents=5000, amount_currency="USD"),
    )
    invoice = await call(
        client.invoices.create,
        OneOffInvoice(
            external_customer_id="acme",
            fees=InvoiceFeesList(__root__=[InvoiceFee(add_on_code="setup")]),
        ),
    )
    assert invoice is not None
    return invoice.lago_id


async def _attempts(gateway: Gateway, invoice_id: str) -> list[Collection]:
    async with gateway.runtime.database.session() as session:
        query = select(Collection).where(Collection.invoice_id == invoice_id)
        return list((await session.exec(query)).all())


async def test_the_payment_url_is_the_gateway_s_stripe_link(
    gateway: Gateway, served: str, stripe: FakeStripe
) -> None:
    client = Client(api_key=await gateway.key("billing:write"), api_url=served)
    invoice_id = await _one_off_invoice(client)

    url = await call(client.invoices.payment_url, invoice_id)
    again = await call(client.invoices.payment_url, invoice_id)

    assert url.startswith("https://checkout.stripe.com/") and again == url
    session = stripe.checkout_sessions[url.rsplit("/", 1)[1]]
    assert (session["mode"], session["amount_total"], session["currency"]) == (
        "payment",
        5000,
        "usd",
    )
    assert session["metadata"]["lago_invoice_id"] == invoice_id
    [attempt] = await _attempts(gateway, invoice_id)
    assert (attempt.kind, attempt.payment_link) == ("checkout", url)
    links = await audit_rows(gateway, "collection.payment_link")
    assert [(r.outcome, r.target, r.upstream) for r in links] == [("opened", invoice_id, "stripe")]


async def test_the_payment_url_answer_has_lago_s_shape(gateway: Gateway) -> None:
    headers = await gateway.headers("billing:read", "billing:write")
    client = gateway.client
    await client.post(
        "/api/v1/customers",
        headers=headers,
        json={"customer": {"external_id": "acme", "currency": "USD"}},
    )
    body = {
        "add_on": {"name": "Setup", "code": "setup", "amount_cents": 900, "amount_currency": "USD"}
    }
    assert (await client.post("/api/v1/add_ons", headers=headers, json=body)).status_code == 200
    invoice = {"external_customer_id": "acme", "fees": [{"add_on_code": "setup"}]}
    created = await client.post("/api/v1/invoices", headers=headers, json={"invoice": invoice})
    invoice_id = created.json()["invoice"]["lago_id"]

    answer = await client.post(f"/api/v1/invoices/{invoice_id}/payment_url", headers=headers)

    assert answer.status_code == 200, answer.text
    details = answer.json()["invoice_payment_details"]
    customer = gateway.emulator.customers["acme"]
    assert details == {
        "lago_customer_id": customer["lago_id"],
        "external_customer_id": "acme",
        "payment_provider": "stripe",
        "lago_invoice_id": invoice_id,
        "payment_url": details["payment_url"],
    }
    assert details["payment_url"].startswith("https://checkout.stripe.com/")


async def test_payment_url_refusals(gateway: Gateway, served: str) -> None:
    client = Client(api_key=await gateway.key("billing:write"), api_url=served)
    reader = Client(api_key=await gateway.key("billing:read"), api_url=served)
    invoice_id = await _one_off_invoice(client)

    with pytest.raises(LagoApiError) as forbidden:
        await call(reader.invoices.payment_url, invoice_id)
    with pytest.raises(LagoApiError) as unknown:
        await call(client.invoices.payment_url, "7c5a8ed4-1d58-4c5c-8f3f-1a2b3c4d5e6f")
    set_payment_status(gateway.emulator, gateway.emulator.invoices[invoice_id], "succeeded")
    with pytest.raises(LagoApiError) as paid:
        await call(client.invoices.payment_url, invoice_id)

    assert forbidden.value.status_code == 403
    assert (unknown.value.status_code, unknown.value.response["code"]) == (
        404,
        "invoice_not_found",
    )
    assert paid.value.status_code == 422
    assert paid.value.response["error_details"] == {
        "base": ["invalid_invoice_status_or_payment_status"]
    }
    assert await _attempts(gateway, invoice_id) == []
    assert outcomes(await audit_rows(gateway, "invoices.payment_url")) == [
        ("invoices.payment_url", "rejected", None, 422)
    ]
