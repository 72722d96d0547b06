"""What a hold reserves: the meter's increase, from the allowance first, then tokens at the
catalog's cost, or nothing beyond an allowance billed in arrears; 402 when not covered."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.catalog import accounting
from gateway.catalog.schemas import Catalog
from gateway.errors import PaymentRequired
from gateway.meters import store as meters_store
from gateway.meters.metering import TOTAL, MeterRule, event_value, increase
from gateway.meters.service import Terms
from gateway.usage.parsing import ParsedEvent

ZERO = accounting.ZERO


@dataclass(frozen=True)
class Cover:
    """How a hold is paid: units from the allowance, tokens, and the rest in arrears."""

    units: float
    allowance_units: float
    tokens: Decimal
    paid_from: str


async def reserve(
    conn: AsyncConnection,
    catalog: Catalog | None,
    rule: MeterRule,
    terms: Terms,
    event: ParsedEvent,
    period_start: float,
    account: Mapping[str, Any],
) -> Cover:
    """Reserve the event's increase: allowance first, then tokens, or refuse (402)."""
    subscription = terms.row["external_id"]
    rows = await meters_store.meters_of(conn, subscription, period_start)
    _, distinct = event_value(rule, event.properties)
    seen = False
    if distinct is not None:
        key = (subscription, event.code, period_start, TOTAL)
        seen = await meters_store.value_seen(conn, key, distinct)
    return decide(catalog, rule, terms, event, rows, seen, account)


def decide(
    catalog: Catalog | None,
    rule: MeterRule,
    terms: Terms,
    event: ParsedEvent,
    rows: list[dict[str, Any]],
    seen: bool,
    account: Mapping[str, Any],
) -> Cover:
    """The cover of the event from the period's meters (``rows``, shards combined), whether
    a unique-count value was ``seen`` already, and the locked token ``account``."""
    totals = {r["metric"]: r for r in rows if r["group_key"] == TOTAL}
    meter = totals.get(event.code) or {"units": 0.0, "held": 0.0}
    value, _ = event_value(rule, event.properties)
    used = float(meter["units"]) + float(meter["held"])
    units = increase(rule.aggregation, used, value, seen)
    allowance = accounting.allowance(catalog, terms.plan_code, event.code)
    if units <= 0 or allowance is None:
        return Cover(units, 0.0, ZERO, "allowance" if allowance else "invoice")
    if allowance.included is None:
        return Cover(units, units, ZERO, "allowance")
    from_allowance = min(units, max(float(allowance.included) - used, 0.0))
    rest = units - from_allowance
    if rest <= 0:
        return Cover(units, from_allowance, ZERO, "allowance")
    paid = "allowance_and_" if from_allowance else ""
    if allowance.beyond == "invoice":
        return Cover(units, from_allowance, ZERO, paid + "invoice")
    if allowance.beyond == "blocked":
        raise PaymentRequired(
            "the plan's included usage is used up and the plan allows nothing beyond it",
            details={"code": event.code, "included": allowance.included, "beyond": "blocked"},
        )
    cost = accounting.token_costs(catalog).get(event.code)
    needed = ZERO if cost is None else Decimal(str(rest)) * cost
    available = accounting.tokens_available(catalog, terms.plan_code, totals, account)
    if cost is None or needed > available:
        raise PaymentRequired(
            "not enough tokens for this generation",
            details={
                "code": event.code,
                "tokens_needed": accounting.text(needed) if cost is not None else None,
                "tokens_available": accounting.text(max(available, ZERO)),
            },
        )
    return Cover(units, from_allowance, needed, paid + "tokens")
