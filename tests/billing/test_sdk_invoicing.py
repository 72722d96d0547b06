"""Lago's SDK through the gateway: add-ons, one-off invoices, and ``invoices.payment_url``
without Stripe (the gateway collects, so it says Stripe is missing)."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import (
    AddOn,
    Customer,
    InvoiceFee,
    InvoiceFeesList,
    OneOffInvoice,
)

from tests.billing.support import audit_rows, outcomes
from tests.conftest import Gateway
from tests.support.served import call, served

__all__ = ["served"]


async def _sdk(gateway: Gateway, served: str, *scopes: str) -> Client:
    return Client(api_key=await gateway.key(*scopes), api_url=served)


async def _setup_fee(client: Client, code: str = "setup", cents: int = 5000) -> None:
    await call(
        client.add_ons.create,
        AddOn(
            name=code.title(), code=code, amount_cents=cents, amount_currency="USD", description="!"
        ),
    )


async def test_the_sdk_manages_add_ons_through_the_gateway(gateway: Gateway, served: str) -> None:
    lago = gateway.emulator
    client = await _sdk(gateway, served, "billing:read", "billing:write")

    created = await call(
        client.add_ons.create,
        AddOn(name="Setup", code="setup", amount_cents=5000, amount_currency="USD"),
    )
    assert created is not None and created.lago_id == lago.add_ons["setup"]["lago_id"]
    assert (created.amount_cents, created.invoice_display_name) == (5000, None)

    found = await call(client.add_ons.find, "setup")
    assert found.name == "Setup"
    updated = await call(
        client.add_ons.update, AddOn(code="onboarding", invoice_display_name="Onboarding"), "setup"
    )
    assert (updated.code, updated.invoice_display_name, updated.amount_cents) == (
        "onboarding",
        "Onboarding",
        5000,
    )
    listed = await call(client.add_ons.find_all)
    assert [a.code for a in listed["add_ons"]] == ["onboarding"]
    deleted = await call(client.add_ons.destroy, "onboarding")
    assert deleted.lago_id == created.lago_id and lago.add_ons == {}

    rows = await audit_rows(gateway)
    assert outcomes(rows) == [
        ("add_ons.create", "success", "lago", 200),
        ("add_ons.update", "success", "lago", 200),
        ("add_ons.delete", "success", "lago", 200),
    ]
    assert [r.target for r in rows] == ["setup", "setup", "onboarding"]
    assert rows[1].detail == {"code": "onboarding"}


async def test_add_on_bodies_are_checked_and_scopes_enforced(gateway: Gateway, served: str) -> None:
    reader = await _sdk(gateway, served, "billing:read")
    writer = await _sdk(gateway, served, "billing:write")

    with pytest.raises(LagoApiError) as refused:
        await call(reader.add_ons.create, AddOn(name="Setup", code="setup", amount_cents=1))
    assert refused.value.status_code == 403
    with pytest.raises(LagoApiError) as invalid:
        await call(writer.add_ons.create, AddOn(code="setup", amount_cents=5))
    assert invalid.value.status_code == 422
    assert invalid.value.response["error_details"] == {
        "name": ["value_is_mandatory"],
        "amount_currency": ["value_is_mandatory"],
    }
    free = AddOn(name="Setup", code="setup", amount_cents=0, amount_currency="USD")
    with pytest.raises(LagoApiError) as by_lago:
        await call(writer.add_ons.create, free)
    assert by_lago.value.response["error_details"] == {"amount_cents": ["value_is_out_of_range"]}
    with pytest.raises(LagoApiError) as missing:
        await call(reader.add_ons.find, "nothing")
    assert (missing.value.status_code, missing.value.response["code"]) == (404, "add_on_not_found")
    with pytest.raises(LagoApiError) as unread:
        await call(writer.add_ons.find_all)
    assert unread.value.status_code == 403

    assert gateway.emulator.add_ons == {}
    assert outcomes(await audit_rows(gateway)) == [
        ("add_ons.create", "rejected", None, 422),
        ("add_ons.create", "rejected", "lago", 422),
    ]


async def test_the_sdk_issues_a_one_off_invoice_through_the_gateway(
    gateway: Gateway, served: str
) -> None:
    lago = gateway.emulator
    client = await _sdk(gateway, served, "billing:read", "billing:write")
    await call(client.customers.create, Customer(external_id="acme", name="Acme", currency="USD"))
    await _setup_fee(client)
    await _setup_fee(client, "seat", 1250)

    invoice = await call(
        client.invoices.create,
        OneOffInvoice(
            external_customer_id="acme",
            currency="USD",
            fees=InvoiceFeesList(
                __root__=[
                    InvoiceFee(add_on_code="setup", description="Kick-off"),
                    InvoiceFee(add_on_code="seat", units=3, invoice_display_name="Seats"),
                ]
            ),
        ),
    )

    assert invoice is not None and invoice.invoice_type == "one_off"
    assert (invoice.status, invoice.payment_status) == ("finalized", "pending")
    assert (invoice.fees_amount_cents, invoice.total_amount_cents) == (8750, 8750)
    fees = {fee.item.code: fee for fee in invoice.fees.__root__}
    assert (fees["setup"].amount_cents, fees["setup"].description) == (5000, "Kick-off")
    assert (fees["seat"].amount_cents, fees["seat"].units) == (3750, "3.0")
    assert fees["seat"].item.invoice_display_name == "Seats"
    assert lago.invoices[invoice.lago_id]["total_amount_cents"] == 8750

    rows = await audit_rows(gateway, "invoices.create")
    assert outcomes(rows) == [("invoices.create", "success", "lago", 200)]
    assert rows[0].target == "acme"
    assert rows[0].detail == {"add_on_codes": ["setup", "seat"]}


async def test_one_off_invoice_refusals(gateway: Gateway, served: str) -> None:
    writer = await _sdk(gateway, served, "billing:write")
    reader = await _sdk(gateway, served, "billing:read")
    await call(writer.customers.create, Customer(external_id="acme", name="Acme", currency="USD"))
    no_fees = OneOffInvoice(external_customer_id="acme", fees=InvoiceFeesList(__root__=[]))
    one_fee = OneOffInvoice(
        external_customer_id="acme",
        fees=InvoiceFeesList(__root__=[InvoiceFee(add_on_code="setup", units=-1)]),
    )

    with pytest.raises(LagoApiError) as empty:
        await call(writer.invoices.create, no_fees)
    with pytest.raises(LagoApiError) as negative:
        await call(writer.invoices.create, one_fee)
    with pytest.raises(LagoApiError) as forbidden:
        await call(reader.invoices.create, one_fee)

    assert empty.value.status_code == 422 and "fees" in empty.value.response["error_details"]
    assert negative.value.response["error_details"] == {"fees.0.units": ["value_is_invalid"]}
    assert forbidden.value.status_code == 403
    assert gateway.emulator.invoices == {}
    assert outcomes(await audit_rows(gateway, "invoices.create")) == [
        ("invoices.create", "rejected", None, 422),
        ("invoices.create", "rejected", None, 422),
    ]


async def test_payment_url_without_stripe_says_so(gateway: Gateway, served: str) -> None:
    client = await _sdk(gateway, served, "billing:write")
    await call(client.customers.create, Customer(external_id="acme", name="Acme", currency="USD"))
    await _setup_fee(client)
    invoice = await call(
        client.invoices.create,
        OneOffInvoice(
            external_customer_id="acme",
            fees=InvoiceFeesList(__root__=[InvoiceFee(add_on_code="setup")]),
        ),
    )

    with pytest.raises(LagoApiError) as raised:
        await call(client.invoices.payment_url, invoice.lago_id)

    assert raised.value.status_code == 422
    assert raised.value.response["code"] == "stripe_not_configured"
    details = raised.value.response["error_details"]
    assert details["base"] == ["missing_payment_provider"]
    assert "GATEWAY_STRIPE_SECRET_KEY" in details["message"]
    assert outcomes(await audit_rows(gateway, "invoices.payment_url")) == [
        ("invoices.payment_url", "rejected", None, 422)
    ]
