"""What the gateway checks in a customer body before Lago sees it (the rest passes through)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gateway.billing.payloads import Id, LagoInput


class Metadata(LagoInput):
    key: str
    value: str | int | float | bool
    display_in_invoice: bool | None = None


class BillingConfiguration(LagoInput):
    payment_provider: Literal["stripe"] | None = Field(
        None, description="Only Stripe; in gateway collection mode it is never sent to Lago"
    )
    payment_provider_code: str | None = None
    provider_customer_id: str | None = Field(
        None, description="An existing Stripe customer (cus_...) to adopt instead of creating one"
    )
    sync_with_provider: bool | None = None
    sync: bool | None = None
    provider_payment_methods: list[str] | None = None
    invoice_grace_period: int | None = None
    document_locale: str | None = None


class CustomerInput(LagoInput):
    external_id: Id
    name: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    email: str | None = None
    currency: str | None = None
    country: str | None = None
    timezone: str | None = None
    net_payment_term: int | None = None
    tax_codes: list[str] | None = None
    metadata: list[Metadata] | None = None
    billing_configuration: BillingConfiguration | None = None


class CustomerCreate(BaseModel):
    """``POST /api/v1/customers``: Lago's body (other Lago fields pass through)."""

    customer: CustomerInput
