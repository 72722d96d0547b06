"""Comparing the catalog file with Lago, field by field, and planning what to create or update.

Only the fields the file sets are compared (Lago adds ``lago_id``, ``created_at``, taxes...):
a file that says nothing about a plan's ``description`` leaves whatever Lago has. Numbers
compare as decimals ("0.25" equals 0.25), times as instants. What Lago has and the file does
not is reported and left alone: apply never deletes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel

from gateway.catalog.schemas import BillableMetric, Catalog, Charge, Coupon, Plan

Kind = Literal["billable_metric", "plan", "coupon"]
KINDS: tuple[Kind, ...] = ("billable_metric", "plan", "coupon")
GATEWAY_ONLY = {"allowances"}


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any

    def render(self) -> str:
        return f"{self.path} {_show(self.before)} → {_show(self.after)}"


@dataclass
class Change:
    """One create or update of one Lago object, with the field changes that justify it."""

    action: Literal["create", "update"]
    kind: Kind
    code: str
    wanted: BaseModel
    fields: list[FieldChange] = field(default_factory=list)
    current: dict[str, Any] | None = None

    @property
    def title(self) -> str:
        return f"{self.action} {self.kind} {self.code}"

    def diff_lines(self) -> list[str]:
        if self.action == "create":
            return [f"+ {self.kind} {self.code}"]
        return [f"~ {self.kind} {self.code}: {change.render()}" for change in self.fields]


@dataclass
class CatalogPlan:
    """Everything apply would do, in order: metrics, then plans, then coupons."""

    changes: list[Change]
    unchanged: dict[Kind, int]
    only_in_lago: list[tuple[Kind, str]]

    @property
    def empty(self) -> bool:
        return not self.changes


@dataclass
class LagoCatalog:
    """What Lago has, keyed by code, as Lago answered."""

    billable_metrics: dict[str, dict[str, Any]]
    plans: dict[str, dict[str, Any]]
    coupons: dict[str, dict[str, Any]]

    def of(self, kind: Kind) -> dict[str, dict[str, Any]]:
        return {"billable_metric": self.billable_metrics, "plan": self.plans}.get(
            kind, self.coupons
        )


def set_fields(model: BaseModel) -> dict[str, Any]:
    """The fields the file sets, as JSON (what is compared, and sent on update)."""
    data = model.model_dump(mode="json", exclude_unset=True)
    return {k: v for k, v in data.items() if k not in GATEWAY_ONLY}


def plan_changes(catalog: Catalog, lago: LagoCatalog) -> CatalogPlan:
    """The changes that make Lago match ``catalog``."""
    changes: list[Change] = []
    unchanged: dict[Kind, int] = dict.fromkeys(KINDS, 0)
    only_in_lago: list[tuple[Kind, str]] = []
    sections: list[tuple[Kind, list[Any]]] = [
        ("billable_metric", catalog.billable_metrics),
        ("plan", catalog.plans),
        ("coupon", catalog.coupons),
    ]
    for kind, wanted_items in sections:
        current = lago.of(kind)
        for wanted in wanted_items:
            existing = current.get(wanted.code)
            if existing is None:
                changes.append(Change("create", kind, wanted.code, wanted))
                continue
            found = compare(kind, wanted, existing)
            if found:
                changes.append(Change("update", kind, wanted.code, wanted, found, existing))
            else:
                unchanged[kind] += 1
        codes = {w.code for w in wanted_items}
        only_in_lago += [(kind, code) for code in current if code not in codes]
    return CatalogPlan(changes, unchanged, only_in_lago)


def compare(kind: Kind, wanted: Any, lago_object: dict[str, Any]) -> list[FieldChange]:
    """Field changes from Lago's object to the file's, for the fields the file sets."""
    actual = VIEWS[kind](lago_object)
    mine = set_fields(wanted)
    if kind != "plan":
        return differences(mine, actual, "")
    charges = mine.pop("charges", None)
    found = differences(mine, actual, "")
    if charges is not None:
        found += _charge_changes(wanted.charges, actual.get("charges") or [])
    return found


def _charge_changes(wanted: list[Charge], actual: list[dict[str, Any]]) -> list[FieldChange]:
    by_key = {_charge_key(c): c for c in actual}
    found: list[FieldChange] = []
    for charge in wanted:
        path = f"charges[{charge.key}]"
        existing = by_key.pop(charge.key, None)
        if existing is None:
            found.append(FieldChange(path, None, "added"))
        else:
            found += differences(set_fields(charge), existing, path)
    found += [FieldChange(f"charges[{key}]", "present", "removed") for key in by_key]
    return found


def _charge_key(charge: dict[str, Any]) -> str:
    return str(charge.get("code") or charge.get("billable_metric_code"))


def charge_ids(lago_plan: dict[str, Any] | None) -> dict[str, str]:
    """Charge key → Lago charge id, so an update keeps (not recreates) existing charges."""
    charges = (lago_plan or {}).get("charges") or []
    return {_charge_key(c): str(c["lago_id"]) for c in charges if c.get("lago_id")}


def differences(wanted: Any, actual: Any, path: str) -> list[FieldChange]:
    """Where ``actual`` differs from ``wanted``; dicts compare on ``wanted``'s keys only."""
    if isinstance(wanted, dict):
        if not isinstance(actual, dict):
            return [FieldChange(path, actual, wanted)]
        found: list[FieldChange] = []
        for key, value in wanted.items():
            found += differences(value, actual.get(key), f"{path}.{key}" if path else key)
        return found
    if isinstance(wanted, list):
        if not isinstance(actual, list) or len(actual) != len(wanted):
            return [FieldChange(path, actual, wanted)]
        found = []
        for index, (mine, theirs) in enumerate(zip(wanted, actual, strict=True)):
            found += differences(mine, theirs, f"{path}[{index}]")
        return found
    return [] if same_value(wanted, actual) else [FieldChange(path, actual, wanted)]


def same_value(wanted: Any, actual: Any) -> bool:
    """Equal, or the same number or instant written differently."""
    if wanted == actual and type(wanted) is type(actual):
        return True
    if isinstance(wanted, bool) or isinstance(actual, bool) or wanted is None or actual is None:
        return bool(wanted == actual)
    number_a, number_b = _number(wanted), _number(actual)
    if number_a is not None and number_b is not None:
        return number_a == number_b
    instant_a, instant_b = _instant(wanted), _instant(actual)
    if instant_a is not None and instant_b is not None:
        return instant_a == instant_b
    return bool(wanted == actual)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _instant(value: Any) -> datetime | None:
    if isinstance(value, str) and "T" in value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _show(value: Any) -> str:
    if isinstance(value, str) and value not in ("added", "removed", "present"):
        return f'"{value}"'
    if value is None:
        return "∅"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _pick(source: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    return {name: source[name] for name in model.model_fields if name in source}


def metric_view(lago_metric: dict[str, Any]) -> dict[str, Any]:
    """A Lago billable metric in the file's shape."""
    view = _pick(lago_metric, BillableMetric)
    view["filters"] = [
        {"key": f.get("key"), "values": list(f.get("values") or [])}
        for f in lago_metric.get("filters") or []
    ]
    return view


def charge_view(lago_charge: dict[str, Any]) -> dict[str, Any]:
    """A Lago charge in the file's shape (its metric by code)."""
    view = _pick(lago_charge, Charge)
    view["filters"] = [
        {
            "values": f.get("values") or {},
            "properties": f.get("properties") or {},
            "invoice_display_name": f.get("invoice_display_name"),
        }
        for f in lago_charge.get("filters") or []
    ]
    return view


def plan_view(lago_plan: dict[str, Any]) -> dict[str, Any]:
    """A Lago plan in the file's shape."""
    view = _pick(lago_plan, Plan)
    view["charges"] = [charge_view(c) for c in lago_plan.get("charges") or []]
    return view


def coupon_view(lago_coupon: dict[str, Any]) -> dict[str, Any]:
    """A Lago coupon in the file's shape (``plan_codes`` back under ``applies_to``)."""
    view = _pick(lago_coupon, Coupon)
    plans = list(lago_coupon.get("plan_codes") or [])
    metrics = list(lago_coupon.get("billable_metric_codes") or [])
    view["applies_to"] = {"plan_codes": plans, "billable_metric_codes": metrics}
    if lago_coupon.get("expiration") != "time_limit":
        view.pop("expiration_at", None)
    return view


VIEWS = {"billable_metric": metric_view, "plan": plan_view, "coupon": coupon_view}
