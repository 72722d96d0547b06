"""What a subscription's meters mean against its plan: allowances, token costs, tokens left.

One formula for holds, the balance answer and token alerts (pure: no database, no Lago):

- usage of a metric in the period = its meter's ``units`` (accepted events) plus ``held``
  (the allowance open holds reserve): whatever of that exceeds the plan's allowance is
  usage beyond it, however the holds end;
- tokens spent = the usage beyond each allowance paid from tokens x the metric's token cost;
- tokens available = Lago's wallet balance - tokens spent - tokens open holds reserve.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from gateway.catalog.schemas import Allowance, Catalog

ZERO = Decimal(0)


def decimal(value: Any) -> Decimal:
    return Decimal(str(value or 0))


def text(value: Decimal) -> str:
    """Lago's decimal text: ``"5"``, ``"2.5"``, ``"0"``."""
    return format(value.normalize(), "f") if value else "0"


def allowance(catalog: Catalog | None, plan_code: str | None, metric: str) -> Allowance | None:
    """What the plan includes of ``metric`` (None: the catalog does not say)."""
    plan = catalog.plan(plan_code) if catalog is not None and plan_code else None
    return plan.allowances.get(metric) if plan else None


def token_costs(catalog: Catalog | None) -> dict[str, Decimal]:
    """Tokens one unit of each metric costs."""
    if catalog is None:
        return {}
    return {
        cost.metric: Decimal(cost.tokens) / Decimal(cost.per_units)
        for cost in catalog.token_costs.values()
    }


def used(meter: Mapping[str, Any] | None) -> float:
    """Usage of the period, reservations included."""
    if meter is None:
        return 0.0
    return float(meter["units"]) + float(meter["held"])


def tokens_spent(
    catalog: Catalog | None, plan_code: str | None, totals: Mapping[str, Mapping[str, Any]]
) -> Decimal:
    """Tokens the period's usage beyond the allowances paid from tokens costs (``totals``:
    each metric's whole-metric meter row)."""
    costs = token_costs(catalog)
    spent = ZERO
    for metric, meter in totals.items():
        rule = allowance(catalog, plan_code, metric)
        cost = costs.get(metric)
        if cost is None or rule is None or rule.beyond != "tokens" or rule.included is None:
            continue
        beyond = used(meter) - float(rule.included)
        if beyond > 0:
            spent += Decimal(str(beyond)) * cost
    return spent


def tokens_available(
    catalog: Catalog | None,
    plan_code: str | None,
    totals: Mapping[str, Mapping[str, Any]],
    account: Mapping[str, Any] | None,
) -> Decimal:
    """Tokens left to spend: the wallet, less the period's spending, less what holds keep."""
    if account is None:
        return -tokens_spent(catalog, plan_code, totals)
    credits, held = decimal(account["credits"]), decimal(account["held_tokens"])
    return credits - tokens_spent(catalog, plan_code, totals) - held
