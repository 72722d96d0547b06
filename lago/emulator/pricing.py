"""Aggregation of events into units and Lago's charge models, in Decimal."""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from .state import Record

_ZERO = Decimal(0)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def aggregate(metric: Record, events: list[Record]) -> Decimal:
    """Units for ``metric`` over ``events`` (sorted by timestamp)."""
    kind, field = metric["aggregation_type"], metric.get("field_name")
    if kind == "count_agg":
        return Decimal(len(events))
    values = [e["properties"].get(field) for e in events]
    if kind == "unique_count_agg":
        return Decimal(len({str(v) for v in values if v is not None}))
    numbers = [n for n in map(_number, values) if n is not None]
    if not numbers:
        return _ZERO
    if kind == "max_agg":
        return max(numbers)
    if kind == "latest_agg":
        return numbers[-1]
    return sum(numbers, _ZERO)


def _decimal(properties: Record, key: str) -> Decimal:
    return _number(properties.get(key)) or _ZERO


def _graduated(ranges: Iterable[Record], units: Decimal, key: str, scale: Decimal) -> Decimal:
    amount = _ZERO
    for band in ranges:
        start = _decimal(band, "from_value")
        end = _number(band.get("to_value"))
        if units <= 0 or (start > 0 and units < start):
            break
        top = units if end is None else min(units, end)
        # Lago's ranges are inclusive: 0-10 then 11-20, so later bands count their first unit.
        band_units = top - start + (0 if start == 0 else 1)
        amount += _decimal(band, "flat_amount") + band_units * _decimal(band, key) * scale
        if end is None or units <= end:
            break
    return amount


def _volume(ranges: list[Record], units: Decimal) -> Decimal:
    for band in ranges:
        end = _number(band.get("to_value"))
        if end is None or units <= end:
            return _decimal(band, "flat_amount") + units * _decimal(band, "per_unit_amount")
    return _ZERO


def _package(properties: Record, units: Decimal) -> Decimal:
    billable = max(units - _decimal(properties, "free_units"), _ZERO)
    size = _decimal(properties, "package_size") or Decimal(1)
    return Decimal(math.ceil(billable / size)) * _decimal(properties, "amount")


def charge_amount(charge: Record, units: Decimal, events: list[Record]) -> Decimal:
    """The amount, in currency units, of ``charge`` for ``units``."""
    model, properties = charge["charge_model"], charge.get("properties") or {}
    if model == "standard":
        return units * _decimal(properties, "amount")
    if model == "package":
        return _package(properties, units)
    if model == "graduated":
        ranges = properties.get("graduated_ranges") or []
        return _graduated(ranges, units, "per_unit_amount", Decimal(1))
    if model == "graduated_percentage":
        ranges = properties.get("graduated_percentage_ranges") or []
        return _graduated(ranges, units, "rate", Decimal("0.01"))
    if model == "volume":
        return _volume(properties.get("volume_ranges") or [], units)
    if model == "percentage":
        fixed = _decimal(properties, "fixed_amount") * len(events)
        return units * _decimal(properties, "rate") / 100 + fixed
    if model == "dynamic":
        totals = (_number(e.get("precise_total_amount_cents")) for e in events)
        return sum((t for t in totals if t is not None), _ZERO) / 100
    return _ZERO


def to_cents(amount: Decimal) -> int:
    """Currency units to integer cents, rounded half-up as Lago rounds fees."""
    return int((amount * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def units_text(units: Decimal) -> str:
    """Units as Lago prints a BigDecimal: ``"12.0"``, ``"0.5"``."""
    text = format(units.normalize(), "f")
    return text if "." in text else f"{text}.0"
