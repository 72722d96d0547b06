"""Lago's ``/analytics/*`` reads (``app/controllers/api/v1/analytics/``).

Each figure is computed from the state as the SQL of its model does
(``app/models/analytics/{gross_revenue,invoice_collection,invoiced_usage,mrr,overdue_balance}.rb``);
the window and filters are common (``analytics_window``), MRR's spreading is in
``analytics_mrr``. Rows are rendered as Lago's serializers render the query's columns
(``app/serializers/v1/analytics/*``): ``float`` columns as JSON numbers, ``numeric`` ones
(Rails' ``BigDecimal``) as strings such as ``"1000.0"``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .analytics_mrr import mrrs
from .analytics_window import (
    Window,
    big_decimal,
    counted,
    entity_id,
    entity_of,
    month_label,
    month_of,
    window,
)
from .http import ok, state_of
from .state import EmulatorState, Record

Figure = Callable[[EmulatorState, Window], list[Record]]


def gross_revenues(state: EmulatorState, scope: Window) -> list[Record]:
    """Analytics::GrossRevenue: finalized invoices (not self-billed, no lost dispute) by
    issuing month, currency and billing entity, less every credit note's refund.

    Lago adds pay-in-advance fees not yet invoiced (``instant_charges``); the emulator
    keeps no fee outside an invoice, so that part is always empty.
    """
    refunds: defaultdict[str, int] = defaultdict(int)
    for note in state.credit_notes.values():  # LEFT JOIN credit_notes: any status
        refunds[note["lago_invoice_id"]] += int(note.get("refund_amount_cents") or 0)
    groups: defaultdict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    for invoice in state.invoices.values():
        if not (counted(invoice) and scope.keeps(state, invoice)):
            continue
        key = (month_of(invoice["issuing_date"]), invoice["currency"], entity_of(invoice))
        groups[key][0] += 1
        groups[key][1] += float(invoice["total_amount_cents"]) - refunds[invoice["lago_id"]]
    return [
        {
            "month": month_label(month),
            "amount_cents": amount,
            "currency": currency,
            "invoices_count": big_decimal(int(count)),  # SUM of bigint: numeric
            "billing_entity_id": entity_id(state, entity),
        }
        for (month, currency, entity), (count, amount) in sorted(groups.items())
        if scope.shows(month) and scope.currency in (None, currency)
    ]


def invoice_collections(state: EmulatorState, scope: Window) -> list[Record]:
    """Analytics::InvoiceCollection: finalized invoices by issuing month, currency and
    payment status; every month of the window has a row (nulls when it has no invoice),
    unless a currency is asked for. ``external_customer_id`` is not read by the REST
    controller (``invoice_collections_controller.rb``)."""
    groups: defaultdict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    for invoice in state.invoices.values():
        if counted(invoice) and scope.keeps(state, invoice):
            key = (
                month_of(invoice["issuing_date"]),
                invoice["payment_status"],
                invoice["currency"],
            )
            groups[key][0] += 1
            groups[key][1] += float(invoice["total_amount_cents"])
    rows: list[Record] = []
    for month in scope.months():
        found: list[tuple[Any, Any, int, float]] = [
            (status, currency, int(count), amount)
            for (at, status, currency), (count, amount) in sorted(groups.items())
            if at == month
        ]
        rows.extend(
            {
                "month": month_label(month),
                "payment_status": status,
                "invoices_count": count,
                "amount_cents": amount,
                "currency": currency,
            }
            for status, currency, count, amount in found or [(None, None, 0, 0.0)]
            if scope.currency is None or currency == scope.currency
        )
    return rows


def _overdue_amounts(state: EmulatorState) -> defaultdict[str, int]:
    """Finalized credit notes' offsets per invoice (the ``cn`` subquery)."""
    offsets: defaultdict[str, int] = defaultdict(int)
    for note in state.credit_notes.values():
        if note.get("status", "finalized") == "finalized":
            offsets[note["lago_invoice_id"]] += int(note.get("offset_amount_cents") or 0)
    return offsets


def overdue_balances(state: EmulatorState, scope: Window) -> list[Record]:
    """Analytics::OverdueBalance: invoices flagged ``payment_overdue`` (any status but
    ``deleted``, not self-billed) by due month, currency and billing entity; the amount is
    total - paid - finalized credit notes' offsets. ``lago_invoice_ids`` come as Postgres
    aggregates them: per invoice total (``array_agg(DISTINCT id)``), then those arrays in
    jsonb order (shorter first), flattened by the serializer."""
    offsets = _overdue_amounts(state)
    groups: defaultdict[tuple[str, str, str], dict[int, list[str]]] = defaultdict(dict)
    amounts: defaultdict[tuple[str, str, str], int] = defaultdict(int)
    for invoice in state.invoices.values():
        if not invoice.get("payment_overdue") or invoice["status"] == "deleted":
            continue
        if invoice.get("self_billed") or not scope.keeps(state, invoice):
            continue
        key = (month_of(invoice["payment_due_date"]), invoice["currency"], entity_of(invoice))
        total = int(invoice["total_amount_cents"])
        groups[key].setdefault(total, []).append(invoice["lago_id"])
        paid = int(invoice.get("total_paid_amount_cents") or 0)
        amounts[key] += total - paid - offsets[invoice["lago_id"]]
    rows = []
    for key in sorted(groups):
        month, currency, entity = key
        if not scope.shows(month) or scope.currency not in (None, currency):
            continue
        arrays = sorted((sorted(ids) for ids in groups[key].values()), key=lambda a: (len(a), a))
        rows.append(
            {
                "month": month_label(month),
                "amount_cents": big_decimal(amounts[key]),  # SUM of numeric
                "currency": currency,
                "lago_invoice_ids": [i for ids in arrays for i in ids],
                "billing_entity_id": entity_id(state, entity),
            }
        )
    return rows


def _usage_fees(state: EmulatorState, scope: Window) -> list[Record]:
    """``usage_fees``: charge fees of a subscription, on an invoice of any status that is
    not self-billed and has no lost dispute."""
    return [
        fee
        for invoice in state.invoices.values()
        if not invoice.get("self_billed") and not invoice.get("payment_dispute_lost_at")
        if scope.keeps(state, invoice)
        for fee in invoice["fees"]
        if (fee.get("item") or {}).get("type") == "charge"
        and fee.get("lago_subscription_id") in state.subscriptions
    ]


def invoiced_usages(state: EmulatorState, scope: Window) -> list[Record]:
    """Analytics::InvoicedUsage: charge fees (amount - coupons) by the month the fee was
    created, metric code and currency; newest month first, then the largest amount."""
    groups: defaultdict[tuple[str, Any, str], float] = defaultdict(float)
    for fee in _usage_fees(state, scope):
        key = (month_of(fee["created_at"]), fee["item"].get("code"), fee["amount_currency"])
        coupons = float(fee.get("precise_coupons_amount_cents") or 0)
        groups[key] += float(fee["amount_cents"]) - coupons
    found = [
        {"month": month_label(month), "code": code, "currency": currency, "amount_cents": amount}
        for (month, code, currency), amount in groups.items()
        if scope.shows(month) and scope.currency in (None, currency)
    ]
    found.sort(key=lambda row: row["amount_cents"], reverse=True)
    found.sort(key=lambda row: row["month"], reverse=True)
    return found


def _endpoint(root: str, figure: Figure, by_customer: bool) -> Callable[..., Any]:
    async def index(request: Request) -> Response:
        state = state_of(request)
        scope = window(state, request.query_params, by_customer=by_customer)
        return ok({root: figure(state, scope)})

    index.__doc__ = f"GET /analytics/...: ``{{{root!r}: [...]}}`` (CollectionSerializer)."
    return index


def routes() -> list[BaseRoute]:
    """The analytics routes, mounted under ``/api/v1`` (config/routes.rb, ``namespace
    :analytics``); ``external_customer_id`` is read by gross revenue and overdue balance only."""
    table: tuple[tuple[str, str, Figure, bool], ...] = (
        ("gross_revenue", "gross_revenues", gross_revenues, True),
        ("invoice_collection", "invoice_collections", invoice_collections, False),
        ("invoiced_usage", "invoiced_usages", invoiced_usages, False),
        ("mrr", "mrrs", mrrs, False),
        ("overdue_balance", "overdue_balances", overdue_balances, True),
    )
    return [
        Route(f"/analytics/{path}", _endpoint(root, figure, by_customer), methods=["GET"])
        for path, root, figure, by_customer in table
    ]


__all__ = ["gross_revenues", "invoice_collections", "invoiced_usages", "mrrs", "overdue_balances"]
