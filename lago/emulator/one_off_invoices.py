"""One-off invoices of add-on fees, and an invoice's payment URL.

``POST /invoices``: ``InvoicesController#create``,
``app/services/invoices/create_one_off_service.rb``, ``app/services/fees/one_off_service.rb``.
``POST /invoices/{lago_id}/payment_url``: ``InvoicesController#payment_url``,
``app/services/invoices/payments/generate_payment_url_service.rb``,
``app/serializers/v1/payment_providers/invoice_payment_serializer.rb``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .add_ons import get_add_on
from .clock import iso, parse_iso
from .currencies import ACCEPTED_CURRENCIES
from .errors import NotFound, ValidationFailed
from .http import ok, read_json, require_root, state_of
from .invoices import get_invoice
from .invoicing import create_invoice, serialize
from .outbox import emit
from .state import EmulatorState, Record

# The billing entity every emulated organization has (customers are created under it).
BILLING_ENTITY = "default"
PAYMENT_URL_HOST = "https://payments.lago-emulator.test/invoices"


def _moment(value: Any) -> datetime | None:
    """``Utils::Datetime.parse_iso8601``: a string in ISO 8601, else ``None``."""
    try:
        return parse_iso(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _boundaries(fee: dict[str, Any], now: datetime) -> tuple[str, str]:
    """Fees::OneOffService#valid_boundaries?: both or neither, ISO 8601, from ≤ to; else 422
    ``{"boundaries": ["values_are_invalid"]}``. Absent ones are ``Time.current``."""
    given = (fee.get("from_datetime"), fee.get("to_datetime"))
    if given == (None, None):
        return iso(now), iso(now)
    start, end = _moment(given[0]), _moment(given[1])
    if start is None or end is None or start > end:
        raise ValidationFailed({"boundaries": ["values_are_invalid"]})
    return iso(start), iso(end)


def _units(value: Any) -> float:
    """``fee[:units]&.to_f || 1`` (a string that is no number is 0, as Ruby's ``to_f``)."""
    if value is None:
        return 1.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _round_half_up(value: float) -> int:
    """Ruby's ``Float#round``: halves away from zero."""
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


def fee_params(state: EmulatorState, fee: dict[str, Any]) -> dict[str, Any]:
    """The partial fee (for ``invoicing.make_fee``) of one requested add-on fee."""
    add_on = get_add_on(state, str(fee.get("add_on_code")))
    from_date, to_date = _boundaries(fee, state.now())
    unit_cents = fee.get("unit_amount_cents")
    unit_cents = add_on["amount_cents"] if unit_cents is None else unit_cents
    units = _units(fee.get("units"))
    if units < 0:  # Fee: validates :units, numericality: {greater_than_or_equal_to: 0}
        raise ValidationFailed({"units": ["value_is_out_of_range"]})
    return {
        "amount_cents": _round_half_up(unit_cents * units),
        "units": str(units),
        "precise_unit_amount": str(unit_cents / 100),
        "description": fee.get("description") or add_on["description"],
        "from_date": from_date,
        "to_date": to_date,
        "item": {
            "type": "add_on",
            "code": add_on["code"],
            "name": add_on["name"],
            "description": add_on["description"],
            "invoice_display_name": fee.get("invoice_display_name") or add_on_invoice_name(add_on),
            "lago_item_id": add_on["lago_id"],
            "item_type": "AddOn",
        },
    }


def add_on_invoice_name(add_on: Record) -> str:
    """``AddOn#invoice_name``: the display name, else the name."""
    return str(add_on.get("invoice_display_name") or add_on["name"])


def _check(state: EmulatorState, params: dict[str, Any]) -> Record:
    """CreateOneOffService#call's checks, in its order; returns the customer."""
    customer = state.customers.get(str(params.get("external_customer_id")))
    if customer is None:
        raise NotFound("customer")
    fees = params.get("fees")
    if not isinstance(fees, list) or not fees:
        raise NotFound("fees")
    for fee in fees:
        get_add_on(state, str(fee.get("add_on_code") if isinstance(fee, dict) else None))
    code = params.get("billing_entity_code")
    if code is not None and code != BILLING_ENTITY:
        raise NotFound("billing_entity")
    return customer


def _currency(customer: Record, given: Any) -> str:
    """``currency || customer.currency``, checked as Customers::UpdateCurrencyService's
    update would (``value_is_invalid``); a customer without one takes it once fees are made."""
    currency = given or customer.get("currency")
    if currency not in ACCEPTED_CURRENCIES:
        raise ValidationFailed({"currency": ["value_is_invalid"]})
    return str(currency)


def create_one_off(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Invoices::CreateOneOffService: a finalized ``one_off`` invoice of add-on fees (no
    coupons, no credits), paid at once when it comes to 0; ``invoice.one_off_created``."""
    customer = _check(state, params)
    currency = _currency(customer, params.get("currency"))
    fees = [fee_params(state, fee) for fee in params["fees"]]
    customer["currency"] = customer.get("currency") or currency
    invoice = create_invoice(
        state, customer, fees, currency=currency, invoice_type="one_off", status="finalized"
    )
    order = params.get("purchase_order_number")
    if isinstance(order, str) and order.strip():
        invoice["purchase_order_number"] = order.strip()
    skip = customer.get("finalize_zero_amount_invoice") == "skip"
    if invoice["fees_amount_cents"] == 0 and skip:
        invoice["status"] = "closed"  # TransitionToFinalStatusService; no webhook then
    else:
        emit(state, "invoice.one_off_created", "invoice", serialize(state, invoice))
    return invoice


async def create(request: Request) -> Response:
    """POST /invoices."""
    state = state_of(request)
    params = require_root(await read_json(request), "invoice")
    return ok({"invoice": serialize(state, create_one_off(state, params))})


def payment_url_of(state: EmulatorState, invoice: Record) -> str:
    """GeneratePaymentUrlService's checks, in its order; the provider's URL."""
    customer = serialize(state, invoice)["customer"]
    provider = (customer.get("billing_configuration") or {}).get("payment_provider")
    if not provider:
        raise ValidationFailed({"base": ["no_linked_payment_provider"]})
    if provider == "gocardless":
        raise ValidationFailed({"base": ["invalid_payment_provider"]})
    if invoice["payment_status"] == "succeeded" or invoice["status"] in ("voided", "draft"):
        raise ValidationFailed({"base": ["invalid_invoice_status_or_payment_status"]})
    return f"{PAYMENT_URL_HOST}/{invoice['lago_id']}/{provider}"


async def payment_url(request: Request) -> Response:
    """POST /invoices/{lago_id}/payment_url: ``invoice_payment_details`` with the URL."""
    state = state_of(request)
    invoice = get_invoice(state, request.path_params["lago_id"])
    url = payment_url_of(state, invoice)
    customer = serialize(state, invoice)["customer"]
    details = {
        "lago_customer_id": customer["lago_id"],
        "external_customer_id": customer["external_id"],
        "payment_provider": customer["billing_configuration"]["payment_provider"],
        "lago_invoice_id": invoice["lago_id"],
        "payment_url": url,
    }
    return ok({"invoice_payment_details": details})
