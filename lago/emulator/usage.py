"""``GET /customers/{id}/current_usage``: the open period's usage priced by the plan."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, parse_iso
from .customers import get_customer
from .errors import MethodNotAllowed, NotFound, missing
from .http import ok, paginate, state_of
from .pricing import aggregate, charge_amount, to_cents, units_text
from .state import EmulatorState, Record
from .subscriptions import current_period


def _period_events(
    state: EmulatorState, subscription_id: str, start: datetime, end: datetime
) -> dict[str, list[Record]]:
    by_code: dict[str, list[Record]] = {}
    for event in state.events.values():
        if event["external_subscription_id"] != subscription_id:
            continue
        if start <= parse_iso(event["timestamp"]) <= end:
            by_code.setdefault(event["code"], []).append(event)
    for events in by_code.values():
        events.sort(key=lambda e: e["timestamp"])
    return by_code


def _charge_usage(
    state: EmulatorState, charge: Record, events: list[Record], currency: str
) -> Record:
    metric = state.billable_metrics.get(charge["billable_metric_code"]) or {
        "lago_id": charge["lago_billable_metric_id"],
        "name": charge["billable_metric_code"],
        "code": charge["billable_metric_code"],
        "aggregation_type": "count_agg",
    }
    units = aggregate(metric, events)
    return {
        "units": units_text(units),
        "total_aggregated_units": units_text(units),
        "events_count": len(events),
        "amount_cents": to_cents(charge_amount(charge, units, events)),
        "amount_currency": currency,
        "charge": {
            "lago_id": charge["lago_id"],
            "charge_model": charge["charge_model"],
            "invoice_display_name": charge.get("invoice_display_name"),
        },
        "billable_metric": {
            key: metric[key] for key in ("lago_id", "name", "code", "aggregation_type")
        },
        "filters": [],
        "grouped_usage": [],
    }


def subscription_usage(state: EmulatorState, subscription: Record) -> Record:
    """The ``customer_usage`` object of an active subscription."""
    plan = state.plans.get(subscription["plan_code"])
    period = current_period(state, subscription)
    if plan is None or period is None:
        raise NotFound("subscription")
    events = _period_events(state, subscription["external_id"], *period)
    currency = plan["amount_currency"]
    charges = [
        _charge_usage(state, charge, events.get(charge["billable_metric_code"], []), currency)
        for charge in plan.get("charges", [])
    ]
    amount = sum(item["amount_cents"] for item in charges)
    return {
        "from_datetime": iso(period[0]),
        "to_datetime": iso(period[1]),
        # Lago's date_service.next_end_of_period: the period's last day.
        "issuing_date": period[1].date().isoformat(),
        "lago_invoice_id": None,
        "currency": currency,
        "amount_cents": amount,
        "taxes_amount_cents": 0,
        "total_amount_cents": amount,
        "charges_usage": charges,
    }


def customer_usage_cents(state: EmulatorState, external_customer_id: str) -> int:
    """Current usage of all the customer's active subscriptions, for wallet ongoing balances."""
    return sum(
        subscription_usage(state, record)["total_amount_cents"]
        for record in state.subscriptions.values()
        if record["external_customer_id"] == external_customer_id
        and record["status"] == "active"
        and record["plan_code"] in state.plans
    )


async def current(request: Request) -> Response:
    """GET /customers/{external_customer_id}/current_usage?external_subscription_id=.

    As Lago's Invoices::CustomerUsageService.with_external_ids: an unknown customer is 404
    ``customer_not_found``; a subscription that is not one of its active ones is 405
    ``no_active_subscription``."""
    state = state_of(request)
    customer = get_customer(state, request.path_params["external_customer_id"])
    subscription_id = request.query_params.get("external_subscription_id", "")
    subscription = state.subscription(subscription_id)
    if subscription is None or subscription["external_customer_id"] != customer["external_id"]:
        raise MethodNotAllowed("no_active_subscription")
    return ok({"customer_usage": subscription_usage(state, subscription)})


def _fee_usage(state: EmulatorState, fees: list[Record]) -> Record:
    """One charge's usage from its fees (V1::Customers::ChargeUsageSerializer)."""
    first = fees[0]
    code = (first.get("item") or {}).get("code")
    metric = state.billable_metrics.get(str(code)) or {}
    charge = _charge(state, first["lago_charge_id"]) or {}
    units = sum((Decimal(str(fee.get("units") or 0)) for fee in fees), Decimal(0))
    aggregated = sum(
        (Decimal(str(fee.get("total_aggregated_units") or 0)) for fee in fees), Decimal(0)
    )
    return {
        "units": units_text(units),
        "total_aggregated_units": units_text(aggregated),
        "events_count": sum(int(fee.get("events_count") or 0) for fee in fees),
        "amount_cents": sum(int(fee["amount_cents"]) for fee in fees),
        "amount_currency": first["amount_currency"],
        "charge": {
            "lago_id": first["lago_charge_id"],
            "charge_model": charge.get("charge_model", "standard"),
            "invoice_display_name": charge.get("invoice_display_name"),
        },
        "billable_metric": {
            "lago_id": metric.get("lago_id", first.get("lago_item_id")),
            "name": metric.get("name", code),
            "code": code,
            "aggregation_type": metric.get("aggregation_type", "count_agg"),
        },
        "filters": [],
        "grouped_usage": [],
    }


def _charge(state: EmulatorState, lago_id: str) -> Record | None:
    for plan in state.plans.values():
        for charge in plan.get("charges", []):
            if charge["lago_id"] == lago_id:
                return dict(charge)
    return None


def _period(state: EmulatorState, invoice: Record, period: Record, metric: str | None) -> Record:
    """One usage period (V1::Customers::PastUsageSerializer): the invoice's totals, and the
    charge fees of the subscription (of ``metric`` only, when given)."""
    by_charge: dict[str, list[Record]] = {}
    for fee in invoice["fees"]:
        code = (fee.get("item") or {}).get("code")
        if fee.get("lago_charge_id") is None or metric not in (None, code):
            continue
        if fee.get("external_subscription_id") == period["external_subscription_id"]:
            by_charge.setdefault(fee["lago_charge_id"], []).append(fee)
    taxes = sum(int(fee.get("taxes_amount_cents") or 0) for fee in invoice["fees"])
    return {
        "from_datetime": period["charges_from_datetime"],
        "to_datetime": period["charges_to_datetime"],
        "issuing_date": invoice["issuing_date"],
        "currency": invoice["currency"],
        "amount_cents": invoice["fees_amount_cents"],
        "total_amount_cents": invoice["fees_amount_cents"] + taxes,
        "taxes_amount_cents": taxes,
        "lago_invoice_id": invoice["lago_id"],
        "charges_usage": [_fee_usage(state, fees) for fees in by_charge.values()],
    }


async def past(request: Request) -> Response:
    """GET /customers/{external_customer_id}/past_usage (Lago's PastUsageQuery): the
    subscription's invoiced periods, newest first; no customer check (an unknown one has no
    periods); 422 without ``external_subscription_id``; 404 for an unknown
    ``billable_metric_code``; ``periods_count`` keeps the first periods."""
    state = state_of(request)
    query = request.query_params
    subscription_id = query.get("external_subscription_id")
    if not subscription_id:
        raise missing("external_subscription_id")
    metric = query.get("billable_metric_code") or None
    if metric is not None and metric not in state.billable_metrics:
        raise NotFound("billable_metric")
    customer_id = request.path_params["external_customer_id"]
    periods = [
        _period(state, invoice, period, metric)
        for invoice in state.invoices.values()
        if invoice["customer"]["external_id"] == customer_id
        for period in invoice.get("billing_periods") or []
        if period.get("external_subscription_id") == subscription_id
        and period.get("charges_from_datetime")
    ]
    periods.sort(key=lambda period: period["from_datetime"], reverse=True)
    count = query.get("periods_count", "")
    if count.isdigit():
        periods = periods[: int(count)]
    return paginate(request, "usage_periods", periods)
