"""Lago's payments and a customer's payment methods.

Lago's app/controllers/api/v1/payments_controller.rb (index, show), the PaymentIndex and
PaymentMethodIndex concerns, app/queries/payments_query.rb, payment_methods_query.rb and
app/serializers/v1/payment_serializer.rb. ``state.payments`` holds payments in their wire
form; ``record_payment`` adds one as Lago's Stripe integration records it (collection by
Lago). The emulator has no payment provider, so a customer's payment methods are none.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .clock import iso, new_id
from .customers import get_customer
from .errors import NotFound, ValidationFailed
from .http import ok, paginate, state_of
from .state import EmulatorState, Record

# Invoice::VISIBLE_STATUS: a payment of an invoice in another status is not listed.
_VISIBLE_INVOICES = ("draft", "finalized", "voided", "failed", "pending")


def record_payment(
    state: EmulatorState, invoice_id: str, amount_cents: int, **fields: Any
) -> Record:
    """Store a provider payment of the invoice (``Payment`` as Lago's Stripe integration
    creates it) and return it; ``fields`` override the serializer's keys."""
    invoice = state.invoices[invoice_id]
    customer = invoice["customer"]
    provider_id = f"pi_{uuid.uuid4().hex[:24]}"
    payment = {
        "lago_id": new_id(),
        "lago_customer_id": customer["lago_id"],
        "external_customer_id": customer["external_id"],
        "invoice_ids": [invoice_id],
        "invoice_numbers": [invoice["number"]],
        "lago_payable_id": invoice_id,
        "payable_type": "Invoice",
        "amount_cents": amount_cents,
        "amount_currency": invoice["currency"],
        "status": "succeeded",
        "payment_status": "succeeded",
        "type": "provider",
        "reference": provider_id,
        "payment_provider_code": "stripe",
        "payment_provider_type": "stripe",
        "external_payment_id": provider_id,
        "provider_payment_id": provider_id,
        "provider_customer_id": f"cus_{customer['external_id']}",
        "next_action": {},
        "created_at": iso(state.now()),
        **fields,
    }
    state.payments[payment["lago_id"]] = payment
    return payment


def _visible(state: EmulatorState, payment: Record) -> bool:
    """PaymentsQuery#visible_payable_condition: an invoice's payment shows while the invoice
    is visible; a payment request's always."""
    if payment["payable_type"] != "Invoice":
        return True
    invoice = state.invoices.get(payment["lago_payable_id"])
    return invoice is not None and invoice["status"] in _VISIBLE_INVOICES


def _uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def listed(state: EmulatorState, request: Request, external_customer_id: str | None) -> Response:
    """PaymentIndex#payment_index: ``invoice_id`` (a UUID, else 422 with dry-validation's
    message, PaymentsQueryFiltersContract) and the customer; newest first, then by id."""
    invoice_id = request.query_params.get("invoice_id") or None
    if invoice_id is not None and not _uuid(invoice_id):
        raise ValidationFailed({"invoice_id": ["is in invalid format"]})
    found = [
        payment
        for payment in state.payments.values()
        if _visible(state, payment)
        and (invoice_id is None or invoice_id in payment["invoice_ids"])
        and external_customer_id in (None, payment["external_customer_id"])
    ]
    found.sort(key=lambda payment: payment["lago_id"])
    found.sort(key=lambda payment: payment["created_at"], reverse=True)
    return paginate(request, "payments", found)


async def index(request: Request) -> Response:
    """GET /payments?external_customer_id=&invoice_id=."""
    customer_id = request.query_params.get("external_customer_id") or None
    return listed(state_of(request), request, customer_id)


async def show(request: Request) -> Response:
    """GET /payments/{lago_id}: 404 ``payment_not_found`` (also for an id that is no UUID)."""
    payment = state_of(request).payments.get(request.path_params["lago_id"])
    if payment is None:
        raise NotFound("payment")
    return ok({"payment": payment})


async def customer_index(request: Request) -> Response:
    """GET /customers/{external_customer_id}/payments (404 ``customer_not_found``)."""
    state = state_of(request)
    customer = get_customer(state, request.path_params["external_customer_id"])
    return listed(state, request, customer["external_id"])


async def customer_payment_methods(request: Request) -> Response:
    """GET /customers/{external_customer_id}/payment_methods (404 ``customer_not_found``):
    the emulator's customers have no payment provider, so no payment method."""
    get_customer(state_of(request), request.path_params["external_customer_id"])
    return paginate(request, "payment_methods", [])


def routes() -> list[BaseRoute]:
    """The payment routes, mounted under ``/api/v1``."""
    customer = "/customers/{external_customer_id}"
    return [
        Route("/payments", index, methods=["GET"]),
        Route("/payments/{lago_id}", show, methods=["GET"]),
        Route(f"{customer}/payments", customer_index, methods=["GET"]),
        Route(f"{customer}/payment_methods", customer_payment_methods, methods=["GET"]),
    ]
