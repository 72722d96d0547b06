"""What one accepted event adds to its subscription's meters, as Lago will aggregate it.

Lago's aggregations (``app/services/billable_metrics/aggregations/*`` in getlago/lago-api):
``count_agg`` counts events, ``sum_agg`` adds ``field_name``, ``max_agg`` keeps its largest
value, ``latest_agg`` the value of the event with the latest timestamp, ``unique_count_agg``
counts distinct values of ``field_name``. ``weighted_sum_agg`` (a time integral) and metrics
computed by an ``expression`` are not metered locally. A metric's ``filters`` break its usage
down: each event also adds to the meter of ``key=value`` for every filter value it carries.

Pure functions: no database, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from gateway.catalog.features import property_number
from gateway.catalog.schemas import Catalog

# Lago's aggregation type -> the meter's own word for how it combines values.
AGGREGATIONS = {
    "count_agg": "count",
    "sum_agg": "sum",
    "max_agg": "max",
    "latest_agg": "latest",
    "unique_count_agg": "unique",
}
TOTAL = ""  # the group key of a metric as a whole


class MeterRule(NamedTuple):
    """How events of one metric are metered."""

    aggregation: str  # count, sum, max, latest, unique
    field_name: str | None
    filters: Mapping[str, frozenset[str]] = {}


class Delta(NamedTuple):
    """One event's contribution to one meter row. ``value`` is 1 for a count, the property
    for the others; ``unique`` the distinct value a unique count adds (else None)."""

    external_subscription_id: str
    transaction_id: str
    metric: str
    period_start: float
    group_key: str
    aggregation: str
    value: float
    at: float
    unique: str | None


def meter_rules(catalog: Catalog | None) -> dict[str, MeterRule]:
    """The catalog's metrics the gateway meters (``gateway.meters``), by code."""
    rules: dict[str, MeterRule] = {}
    for metric in catalog.billable_metrics if catalog is not None else []:
        aggregation = AGGREGATIONS.get(metric.aggregation_type)
        if aggregation is None or metric.expression:
            continue
        filters = {f.key: frozenset(f.values) for f in metric.filters}
        field = None if aggregation == "count" else metric.field_name
        rules[metric.code] = MeterRule(aggregation, field, filters)
    return rules


def event_value(rule: MeterRule, properties: Mapping[str, Any] | None) -> tuple[float, str | None]:
    """(value, distinct value) of one event under ``rule``; value 0 when Lago would not
    count the property (absent, or not a number where one is added or compared)."""
    if rule.aggregation == "count" or rule.field_name is None:
        return 1.0, None
    raw = (properties or {}).get(rule.field_name)
    if rule.aggregation == "unique":
        if raw is None or isinstance(raw, dict | list):
            return 0.0, None
        return 1.0, str(raw)
    return property_number(raw) or 0.0, None


def groups(rule: MeterRule, properties: Mapping[str, Any] | None) -> list[str]:
    """The meter rows an event adds to: the total, and one per filter value it carries."""
    keys = [TOTAL]
    for key, values in rule.filters.items():
        value = (properties or {}).get(key)
        if isinstance(value, str | int | float) and str(value) in values:
            keys.append(f"{key}={value}")
    return keys


def deltas(
    rule: MeterRule,
    external_subscription_id: str,
    transaction_id: str,
    metric: str,
    period_start: float,
    at: float,
    properties: Mapping[str, Any] | None,
) -> list[Delta]:
    """Every meter row one event adds to (none for a unique count without a value)."""
    value, unique = event_value(rule, properties)
    if rule.aggregation == "unique" and unique is None:
        return []
    return [
        Delta(
            external_subscription_id,
            transaction_id,
            metric,
            period_start,
            group,
            rule.aggregation,
            value,
            at,
            unique,
        )
        for group in groups(rule, properties)
    ]


def increase(aggregation: str, units: float, value: float, seen: bool = False) -> float:
    """How much one more event of ``value`` raises a meter at ``units`` (what a hold
    reserves): a count 1, a sum the value, a max or latest only what exceeds the meter,
    a unique count 1 for a value not ``seen`` in the period."""
    if aggregation == "count":
        return 1.0
    if aggregation == "sum":
        return value
    if aggregation == "unique":
        return 0.0 if seen else 1.0
    return max(0.0, value - units)
