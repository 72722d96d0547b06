"""``GET /customers/{id}/current_usage``: the open period's usage priced by the plan."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, parse_iso
from .customers import get_customer
from .errors import MethodNotAllowed, NotFound
from .http import ok, state_of
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
