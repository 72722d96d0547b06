"""The alert job's decisions (pure): which thresholds a subscription's meters or a
customer's tokens reached, as the alerts to raise."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from gateway.catalog import accounting
from gateway.catalog.schemas import Catalog
from gateway.meters.alert_store import Raised
from gateway.meters.service import Terms
from gateway.relay.service import iso

USAGE = "usage"
TOKENS = "tokens"
USAGE_MESSAGE = "usage.threshold_reached"
TOKENS_MESSAGE = "tokens.low"


def message_id(kind: str, *key: Any) -> str:
    """The relay message id of one alert (the same whoever raises it)."""
    digest = hashlib.sha256("\x00".join([kind, *map(str, key)]).encode()).hexdigest()[:32]
    return f"msg_gateway_{kind.replace('.', '_')}_{digest}"


def _number(value: float | Decimal) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def usage_alerts(
    catalog: Catalog,
    terms: Terms,
    meters: Sequence[Mapping[str, Any]],
    raised: set[tuple[str, float, float]],
    now: float,
    accepted_at: float | None = None,
) -> list[Raised]:
    """The usage thresholds a subscription's current period reached and has not raised yet
    (``raised``: its (metric, period_start, threshold) already raised)."""
    period = terms.period_of(now)
    if period is None or not terms.active:
        return []
    plan = catalog.plan(terms.plan_code)
    if plan is None:
        return []
    subscription = str(terms.row["external_id"])
    found: list[Raised] = []
    for meter in meters:
        if meter["period_start"] != period[0]:
            continue
        metric = str(meter["metric"])
        allowance = plan.allowances.get(metric)
        if allowance is None or not allowance.included:
            continue
        units = float(meter["units"])
        for percent in catalog.alerts.usage_thresholds(plan, metric):
            if (metric, period[0], float(percent)) in raised:
                continue
            if units * 100 < allowance.included * percent:
                continue
            data = {
                "external_subscription_id": subscription,
                "external_customer_id": terms.customer,
                "plan_code": terms.plan_code,
                "metric": metric,
                "threshold_percent": percent,
                "units": _number(units),
                "included": allowance.included,
                "period_started_at": iso(period[0]),
                "period_ending_at": iso(period[1]),
            }
            key = (subscription, metric, period[0], percent)
            row = {
                "subject": subscription,
                "kind": USAGE,
                "metric": metric,
                "period_start": period[0],
                "threshold": float(percent),
                "round": 0,
                "value": str(_number(units)),
                "message_id": message_id(USAGE_MESSAGE, *key),
                "fired_at": now,
            }
            found.append(Raised(row, USAGE_MESSAGE, data, [subscription], accepted_at))
    return found


def tokens_available(
    catalog: Catalog,
    account: Mapping[str, Any],
    subscriptions: Sequence[Terms],
    meters: Mapping[str, Sequence[Mapping[str, Any]]],
    now: float,
) -> Decimal:
    """A customer's tokens left: the wallet less what holds keep (``accounting``), less what
    each active subscription's current period spent beyond its allowances."""
    available = accounting.tokens_available(catalog, None, {}, account)
    for terms in subscriptions:
        period = terms.period_of(now)
        if period is None or not terms.active:
            continue
        totals = {
            str(m["metric"]): m
            for m in meters.get(str(terms.row["external_id"]), [])
            if m["period_start"] == period[0]
        }
        available -= accounting.tokens_spent(catalog, terms.plan_code, totals)
    return available


def token_alerts(
    catalog: Catalog,
    account: Mapping[str, Any],
    available: Decimal,
    raised: Sequence[Mapping[str, Any]],
    now: float,
) -> tuple[list[Raised], list[dict[str, Any]]]:
    """The ``tokens_below`` thresholds the customer fell below and has not raised since they
    were last resolved, and the raised ones now resolved (back at or above)."""
    customer = str(account["external_customer_id"])
    latest: dict[float, Mapping[str, Any]] = {}
    for row in raised:
        known = latest.get(row["threshold"])
        if known is None or row["round"] > known["round"]:
            latest[float(row["threshold"])] = row
    found: list[Raised] = []
    resolved: list[dict[str, Any]] = []
    for threshold in catalog.alerts.tokens_below:
        last = latest.get(float(threshold))
        key = {
            "subject": customer,
            "kind": TOKENS,
            "metric": "",
            "period_start": 0.0,
            "threshold": float(threshold),
        }
        if available >= threshold:
            if last is not None and last["resolved_at"] is None:
                resolved.append({**key, "round": last["round"]})
            continue
        if last is not None and last["resolved_at"] is None:
            continue
        round_ = 0 if last is None else int(last["round"]) + 1
        data = {
            "external_customer_id": customer,
            "tokens_available": accounting.text(available),
            "threshold": threshold,
            "credits": str(account["credits"]),
            "held_tokens": str(account["held_tokens"]),
        }
        row = {
            **key,
            "round": round_,
            "value": accounting.text(available),
            "message_id": message_id(TOKENS_MESSAGE, customer, threshold, round_),
            "fired_at": now,
        }
        found.append(Raised(row, TOKENS_MESSAGE, data, [customer]))
    return found, resolved
