"""Closing the billing period: the periodic invoice Lago's billing run issues at a period's end.

Lago: ``Clock::SubscriptionsBillerJob`` → ``Subscriptions::OrganizationBillingService`` (the
active subscriptions due today, grouped per customer and currency) → ``BillSubscriptionJob``
→ ``Invoices::SubscriptionService`` and ``Invoices::CalculateFeesService`` (one subscription
fee per subscription, ``Fees::SubscriptionService``; one fee per charge paid in arrears,
``Fees::ChargeService``; then coupons and prepaid credits) → ``invoice.created`` (or
``invoice.drafted`` during the customer's grace period).

The emulator closes the period *now* (its clock is the wall clock): the charges cover the
events from the period's start to now, and the next period's charges start after now. The
subscription fee is that of the period as it was planned: in arrears, the current period's
(prorated by days when the subscription started within it, ``first_subscription_amount``);
in advance, the next period's. A period's subscription fee is never invoiced twice.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from .billing import finalize
from .clock import billing_period, iso, new_id, parse_iso
from .invoicing import announce, create_invoice
from .state import EmulatorState, Record
from .subscriptions import current_period
from .subscriptions import serialize as serialize_subscription
from .usage import subscription_usage

_DAY = 86_400


def _planned_period(plan: Record, subscription: Record, moment: datetime) -> tuple[Any, Any]:
    anchor = parse_iso(subscription["subscription_at"])
    return billing_period(plan["interval"], subscription["billing_time"], anchor, moment)


def _fee_period(plan: Record, subscription: Record, now: datetime) -> tuple[Any, Any]:
    """DatesService: in arrears the current period, in advance the next one."""
    start, end = _planned_period(plan, subscription, now)
    if plan.get("pay_in_advance"):
        return _planned_period(plan, subscription, end + timedelta(seconds=1))
    return start, end


def _already_billed(state: EmulatorState, subscription: Record, start: datetime) -> bool:
    return any(
        row["lago_subscription_id"] == subscription["lago_id"]
        and row["subscription_fee"]
        and row["from_datetime"] == iso(start)
        for row in state.invoice_subscriptions.values()
    )


def _billed_before(state: EmulatorState, subscription: Record) -> bool:
    return any(
        row["lago_subscription_id"] == subscription["lago_id"] and row["subscription_fee"]
        for row in state.invoice_subscriptions.values()
    )


def subscription_amount_cents(
    state: EmulatorState, plan: Record, subscription: Record, period: tuple[Any, Any]
) -> int:
    """Fees::SubscriptionService#compute_amount: the full amount once billed before, paid
    in advance, or started before the period; else the days since the start (rounded up,
    ``Utils::Datetime.date_diff_with_timezone`` in UTC) at the period's single-day price."""
    amount = int(plan["amount_cents"])
    start, end = period
    started = parse_iso(subscription.get("started_at") or subscription["subscription_at"])
    if _billed_before(state, subscription) or plan.get("pay_in_advance") or started <= start:
        return amount
    period_days = ((end - start).total_seconds() + 1) / _DAY
    days = math.ceil((end - started).total_seconds() / _DAY)
    return round(float(amount * days / period_days))


def _subscription_fee(plan: Record, subscription: Record, amount: int) -> dict[str, Any]:
    return {
        "amount_cents": amount,
        "units": "1.0",
        "pay_in_advance": bool(plan.get("pay_in_advance")),
        "lago_subscription_id": subscription["lago_id"],
        "external_subscription_id": subscription["external_id"],
        "item": {
            "type": "subscription",
            "code": plan["code"],
            "name": plan.get("invoice_display_name") or plan["name"],
            "lago_item_id": subscription["lago_id"],
            "item_type": "Subscription",
        },
    }


def _charge_fees(state: EmulatorState, plan: Record, subscription: Record) -> list[Record]:
    """One fee per charge paid in arrears, from the events of the period so far
    (CalculateFeesService#create_charges_fees leaves pay-in-advance charges out)."""
    in_advance = {c["lago_id"] for c in plan.get("charges", []) if c.get("pay_in_advance")}
    fees = []
    for usage in subscription_usage(state, subscription)["charges_usage"]:
        if usage["charge"]["lago_id"] in in_advance:
            continue
        metric = usage["billable_metric"]
        fees.append(
            {
                "amount_cents": usage["amount_cents"],
                "units": usage["units"],
                "total_aggregated_units": usage["total_aggregated_units"],
                "events_count": usage["events_count"],
                "lago_charge_id": usage["charge"]["lago_id"],
                "lago_subscription_id": subscription["lago_id"],
                "external_subscription_id": subscription["external_id"],
                "item": {
                    "type": "charge",
                    "code": metric["code"],
                    "name": usage["charge"].get("invoice_display_name") or metric["name"],
                    "lago_item_id": metric["lago_id"],
                    "item_type": "BillableMetric",
                },
            }
        )
    return fees


def _bill(state: EmulatorState, subscription: Record, now: datetime) -> tuple[list[Any], Record]:
    """The subscription's fees and its InvoiceSubscription (the billed boundaries)."""
    plan = state.plans[subscription["plan_code"]]
    period_now = current_period(state, subscription)
    assert period_now is not None  # active, with a known plan (_due)
    charges_from = period_now[0]
    period = _fee_period(plan, subscription, now)
    fees = []
    with_fee = not _already_billed(state, subscription, period[0])
    if with_fee:
        amount = subscription_amount_cents(state, plan, subscription, period)
        fees.append(_subscription_fee(plan, subscription, amount))
    fees.extend(_charge_fees(state, plan, subscription))
    row = {
        "lago_id": new_id(),
        "lago_subscription_id": subscription["lago_id"],
        "external_subscription_id": subscription["external_id"],
        "lago_plan_id": plan["lago_id"],
        "invoicing_reason": "subscription_periodic",
        "subscription_fee": with_fee,
        "from_datetime": iso(period[0]),
        "to_datetime": iso(period[1]),
        "charges_from_datetime": iso(charges_from),
        # Exact (not whole seconds): the next period's charges start right after it.
        "charges_to_datetime": now.isoformat(),
        "timestamp": iso(now),
    }
    return fees, row


def _billing_period(row: Record) -> Record:
    """An invoice's ``billing_periods`` entry (V1::InvoiceSerializer)."""
    return {
        "lago_subscription_id": row["lago_subscription_id"],
        "external_subscription_id": row["external_subscription_id"],
        "lago_plan_id": row["lago_plan_id"],
        "subscription_from_datetime": row["from_datetime"],
        "subscription_to_datetime": row["to_datetime"],
        "charges_from_datetime": row["charges_from_datetime"],
        "charges_to_datetime": iso(parse_iso(row["charges_to_datetime"])),
        "invoicing_reason": row["invoicing_reason"],
    }


def _due(
    state: EmulatorState, external_customer_id: str | None
) -> dict[tuple[str, str], list[Record]]:
    """Active subscriptions with a known plan, grouped per customer and currency."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in state.subscriptions.values():
        if record["status"] != "active" or record["plan_code"] not in state.plans:
            continue
        if external_customer_id not in (None, record["external_customer_id"]):
            continue
        if record["external_customer_id"] not in state.customers:
            continue
        currency = state.plans[record["plan_code"]]["amount_currency"]
        groups.setdefault((record["external_customer_id"], currency), []).append(record)
    return groups


def _issue(state: EmulatorState, customer_id: str, currency: str, subs: list[Record]) -> Record:
    now = state.now()
    billed = [_bill(state, subscription, now) for subscription in subs]
    fees = [fee for sub_fees, _ in billed for fee in sub_fees]
    customer = state.customers[customer_id]
    invoice = create_invoice(state, customer, fees, currency=currency, status="draft")
    rows = [row for _, row in billed]
    for row in rows:
        row["lago_invoice_id"] = invoice["lago_id"]
        state.invoice_subscriptions[row["lago_id"]] = row
    invoice["subscriptions"] = [serialize_subscription(state, s) for s in subs]
    invoice["billing_periods"] = [_billing_period(row) for row in rows]
    grace = (customer.get("billing_configuration") or {}).get("invoice_grace_period") or 0
    if grace > 0:
        announce(state, invoice)  # invoice.drafted; finalized when the grace period ends
    else:
        finalize(state, invoice)
    return invoice


def close_period(state: EmulatorState, external_customer_id: str | None = None) -> list[Record]:
    """Invoice every active subscription's period up to now (one invoice per customer and
    currency), queue the invoices' webhooks, and start the next period; the invoices."""
    return [
        _issue(state, customer_id, currency, subs)
        for (customer_id, currency), subs in _due(state, external_customer_id).items()
    ]
