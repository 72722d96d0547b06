"""``gateway catalog export``: Lago's catalog written back in the file's format.

What Lago cannot know (a metric's allow_negative, allowances and alerts, a feature's metric and
properties rules, the token wallet, token costs and packs) is carried over from a base
catalog file when one is given, so export then apply is a no-op and export, edit, apply is a
workflow. Features are written oldest first (Lago lists them newest first).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.catalog.planner import (
    LagoCatalog,
    charge_view,
    coupon_view,
    entitlement_values,
    metric_view,
    plan_view,
)
from gateway.catalog.schemas import Catalog


class ExportError(Exception):
    """Lago holds something the catalog format cannot express."""


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _charge(lago_charge: dict[str, Any]) -> dict[str, Any]:
    view = _compact(charge_view(lago_charge))
    view["properties"] = _compact(view.get("properties") or {})
    view["filters"] = [
        _compact({**f, "properties": _compact(f["properties"])}) for f in view["filters"]
    ]
    if not view["filters"]:
        del view["filters"]
    return view


def _metric(lago_metric: dict[str, Any], base: Catalog | None) -> dict[str, Any]:
    view = _compact(metric_view(lago_metric))
    known = base.billable_metrics if base else []
    if any(m.code == view.get("code") and m.allow_negative for m in known):
        view["allow_negative"] = True
    return view


def _plan(lago_plan: dict[str, Any], lago: LagoCatalog, base: Catalog | None) -> dict[str, Any]:
    view = _compact(plan_view(lago_plan))
    view["charges"] = [_charge(c) for c in lago_plan.get("charges") or []]
    known = base.plan(view["code"]) if base else None
    if known is not None and known.allowances:
        view["allowances"] = {
            code: allowance.model_dump(mode="json") for code, allowance in known.allowances.items()
        }
    if known is not None and known.alerts is not None:
        view["alerts"] = known.alerts.model_dump(mode="json", exclude_unset=True)
    if known is not None and known.token_grant is not None:  # gateway-only, like allowances
        view["token_grant"] = known.token_grant.model_dump(mode="json", exclude_none=True)
    entitlements = entitlement_values(lago.entitlements.get(view["code"]) or [])
    if entitlements:
        view["entitlements"] = entitlements
    return view


def _feature(lago_feature: dict[str, Any], base: Catalog | None) -> dict[str, Any]:
    view: dict[str, Any] = _compact(
        {k: lago_feature.get(k) for k in ("code", "name", "description")}
    )
    known = base.feature(view["code"]) if base else None
    privileges = []
    for privilege in lago_feature.get("privileges") or []:
        item = _compact({k: privilege.get(k) for k in ("code", "name", "value_type")})
        if privilege.get("config"):
            item["config"] = privilege["config"]
        mine = known.privilege(str(item.get("code"))) if known is not None else None
        if mine is not None and mine.limits is not None:  # gateway-only, like metric
            item["limits"] = mine.limits
        privileges.append(item)
    if privileges:
        view["privileges"] = privileges
    if known is not None and known.metric is not None:
        view["metric"] = known.metric
    if known is not None and known.properties:
        view["properties"] = {k: list(v) for k, v in known.properties.items()}
    return view


def _coupon(lago_coupon: dict[str, Any]) -> dict[str, Any]:
    view = _compact(coupon_view(lago_coupon))
    applies = view.get("applies_to") or {}
    if not applies.get("plan_codes") and not applies.get("billable_metric_codes"):
        view.pop("applies_to", None)
    return view


def catalog_from_lago(lago: LagoCatalog, base: Catalog | None = None) -> dict[str, Any]:
    """The catalog document for Lago's state, with ``base``'s gateway-only sections."""
    data: dict[str, Any] = {
        "version": 1,
        "billable_metrics": [_metric(m, base) for m in lago.billable_metrics.values()],
        "plans": [_plan(p, lago, base) for p in lago.plans.values()],
        "coupons": [_coupon(c) for c in lago.coupons.values()],
    }
    if lago.features:
        features = list(reversed(lago.features.values()))
        data["features"] = [_feature(f, base) for f in features]
    if base is not None and base.token_wallet is not None:
        data["token_wallet"] = base.token_wallet.model_dump(mode="json")
        data["token_costs"] = {k: v.model_dump(mode="json") for k, v in base.token_costs.items()}
        data["token_packs"] = [p.model_dump(mode="json") for p in base.token_packs]
    if base is not None and "alerts" in base.model_fields_set:
        data["alerts"] = base.alerts.model_dump(mode="json")
    try:
        Catalog.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = f"Lago's catalog does not fit the file format: {where}: {first['msg']}"
        raise ExportError(message) from exc
    return data


def render(data: dict[str, Any], source: str) -> str:
    """The YAML text, with a header saying where it came from."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = f"# Exported from {source} by `gateway catalog export` at {stamp}.\n"
    return header + str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
