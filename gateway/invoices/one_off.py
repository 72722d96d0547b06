"""One-off invoices: add-on fees billed at once (Lago's ``POST /invoices``), audited.

The body is checked (a customer, at least one fee, each naming an add-on; amounts and units
that are numbers, units not negative) and passed on as the caller wrote it,
minus its nulls. Lago's spec types a fee's ``units`` as a decimal string, which Lago's SDKs
send as a number: it is sent on as the string of that number, as Lago reads either
(``fee[:units]&.to_f``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field

from gateway.billing.passthrough import Write, refuse, write
from gateway.billing.payloads import Id, LagoInput, check
from gateway.db import Database
from gateway.errors import GatewayError
from gateway.integrations.lago.client import LagoClient


class OneOffFee(LagoInput):
    add_on_code: Id
    unit_amount_cents: int | None = None
    units: Annotated[Decimal, Field(ge=0)] | None = None  # the spec's pattern: no sign
    invoice_display_name: str | None = None
    description: str | None = None
    from_datetime: str | None = None
    to_datetime: str | None = None
    tax_codes: list[str] | None = None


class OneOffInvoiceInput(LagoInput):
    external_customer_id: Id
    fees: Annotated[list[OneOffFee], Field(min_length=1)]
    currency: str | None = None
    billing_entity_code: str | None = None
    purchase_order_number: str | None = None


class OneOffInvoiceCreate(BaseModel):
    """``POST /api/v1/invoices``: a one-off invoice of add-on fees."""

    invoice: OneOffInvoiceInput


def _lago_fee(fee: Any) -> Any:
    """The fee as Lago's spec types it: a number of ``units`` as its decimal string."""
    units = fee.get("units") if isinstance(fee, dict) else None
    if isinstance(units, int | float) and not isinstance(units, bool):
        return {**fee, "units": str(Decimal(str(units)))}
    return fee


def _add_on_codes(params: dict[str, Any]) -> list[str]:
    fees = params.get("fees")
    found = (
        [f.get("add_on_code") for f in fees if isinstance(f, dict)]
        if isinstance(fees, list)
        else []
    )
    return [code for code in found if isinstance(code, str)]


async def create(
    database: Database, lago: LagoClient, params: dict[str, Any], actor: str
) -> dict[str, Any]:
    """Issue the invoice in Lago (finalized at once) and audit it as ``invoices.create``."""
    customer = params.get("external_customer_id")
    change = Write(
        actor,
        "invoices.create",
        customer if isinstance(customer, str) else None,
        {"add_on_codes": _add_on_codes(params)},
    )
    try:
        check(OneOffInvoiceInput, params)
    except GatewayError as exc:
        raise await refuse(database, change, exc) from exc
    body = {**params, "fees": [_lago_fee(fee) for fee in params["fees"]]}
    return await write(database, lago, change, "POST", "/invoices", json={"invoice": body})
