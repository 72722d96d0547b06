"""Lago's SDK through the gateway: fees, Lago's ``download_pdf`` name, and the invoice calls
the gateway does not serve (405 ``not_served_by_gateway`` naming what to use)."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import (
    AddOn,
    Customer,
    Fee,
    InvoiceFee,
    InvoiceFeesList,
    InvoicePreview,
    OneOffInvoice,
)

from tests.billing.support import audit_rows, outcomes
from tests.conftest import Gateway
from tests.support.served import call, served

__all__ = ["served"]


async def _sdk(gateway: Gateway, served: str, *scopes: str) -> Client:
    return Client(api_key=await gateway.key(*scopes), api_url=served)


async def _setup_fee(client: Client) -> None:
    await call(
        client.add_ons.create,
        AddOn(name="Setup", code="setup", amount_cents=5000, amount_currency="USD"),
    )


async def test_the_sdk_reads_fees_through_the_gateway(gateway: Gateway, served: str) -> None:
    client = await _sdk(gateway, served, "billing:read", "billing:write")
    await call(client.customers.create, Customer(external_id="acme", name="Acme", currency="USD"))
    await _setup_fee(client)
    gateway.emulator.issue_invoice("acme", 999)
    invoice = await call(
        client.invoices.create,
        OneOffInvoice(
            external_customer_id="acme",
            fees=InvoiceFeesList(__root__=[InvoiceFee(add_on_code="setup", units=2)]),
        ),
    )

    add_ons = await call(client.fees.find_all, {"fee_type": "add_on"})
    every = await call(client.fees.find_all, {"external_customer_id": "acme"})
    [fee] = add_ons["fees"]
    found = await call(client.fees.find, fee.lago_id)

    assert (fee.lago_invoice_id, fee.amount_cents, fee.item.code) == (
        invoice.lago_id,
        10000,
        "setup",
    )
    assert [f.item.type for f in every["fees"]] == ["subscription", "add_on"]
    assert found.lago_id == fee.lago_id
    with pytest.raises(LagoApiError) as missing:
        await call(client.fees.find, "not-a-fee")
    assert (missing.value.status_code, missing.value.response["code"]) == (404, "fee_not_found")


async def test_download_pdf_is_lago_s_other_name_for_download(gateway: Gateway) -> None:
    lago = gateway.emulator
    await gateway.client.post(
        "/api/v1/customers",
        headers=await gateway.headers("billing:write"),
        json={"customer": {"external_id": "acme", "currency": "USD"}},
    )
    issued = lago.issue_invoice("acme", 1500)
    headers = await gateway.headers("billing:read")

    answer = await gateway.client.post(
        f"/api/v1/invoices/{issued['lago_id']}/download_pdf", headers=headers
    )

    assert answer.status_code == 200, answer.text
    assert outcomes(await audit_rows(gateway, "invoices.download")) == [
        ("invoices.download", "success", "lago", 200)
    ]


async def test_calls_not_served_say_what_to_use(gateway: Gateway, served: str) -> None:
    client = await _sdk(gateway, served, "billing:read", "billing:write")
    some_id = "7c5a8ed4-1d58-4c5c-8f3f-1a2b3c4d5e6f"
    calls = [
        (client.invoices.preview, (InvoicePreview(plan_code="basic"),)),
        (client.invoices.retry, (some_id,)),
        (client.fees.update, (Fee(payment_status="succeeded"), some_id)),
        (client.fees.destroy, (some_id,)),
    ]

    uses = []
    for method, args in calls:
        with pytest.raises(LagoApiError) as raised:
            await call(method, *args)
        assert raised.value.status_code == 405
        assert raised.value.response["code"] == "not_served_by_gateway"
        uses.append(raised.value.response["error_details"]["use"])

    assert uses == [
        "GET /api/v1/customers/{external_customer_id}/current_usage",
        f"POST /api/v1/invoices/{some_id}/retry_payment",
        "PUT /api/v1/invoices/{lago_id}",
        "PUT /api/v1/invoices/{lago_id}",
    ]
