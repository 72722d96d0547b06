"""Comparing the catalog file with Lago, field by field, and planning what to create or update.

Only the fields the file sets are compared (Lago adds ``lago_id``, ``created_at``, taxes...):
a file that says nothing about a plan's ``description`` leaves whatever Lago has. Numbers
compare as decimals ("0.25" equals 0.25), times as instants. What Lago has and the file does
not is reported and left alone: apply never deletes a metric, plan, coupon or feature.

Within one object the file is whole, as a plan's charges are: a feature's privileges that
Lago has and the file does not are deleted, and so is one whose ``value_type`` or select
options Lago cannot change in place (it is made again); a plan that sets ``entitlements``
gets exactly those (Lago's ``POST /plans/{code}/entitlements`` replaces them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel

from gateway.catalog.features import Feature
from gateway.catalog.schemas import (
    BillableMetric,
    Catalog,
    Charge,
    Coupon,
    Plan,
)

Kind = Literal["billable_metric", "plan", "coupon", "feature", "plan_entitlements"]
KINDS: tuple[Kind, ...] = ("billable_metric", "plan", "coupon", "feature", "plan_entitlements")
GATEWAY_ONLY = {"allowances", "alerts"}


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
    # Deleted before the update: a feature's privileges; a plan's features (entitlements).
    deletions: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.action} {self.kind} {self.code}"

    def diff_lines(self) -> list[str]:
        if self.action == "create":
            return [f"+ {self.kind} {self.code}"]
        return [f"~ {self.kind} {self.code}: {change.render()}" for change in self.fields]


@dataclass
class CatalogPlan:
    """Everything apply would do, in order: metrics, plans, coupons, features, then the
    plans' entitlements."""

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
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Plan code → Lago's entitlement objects of that plan (``GET /plans/{code}/entitlements``).
    entitlements: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def of(self, kind: Kind) -> dict[str, dict[str, Any]]:
        return {
            "billable_metric": self.billable_metrics,
            "plan": self.plans,
            "feature": self.features,
        }.get(kind, self.coupons)


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
    replaced = _feature_section(catalog, lago, changes, unchanged, only_in_lago)
    for plan in catalog.plans:
        if "entitlements" not in plan.model_fields_set:
            continue
        actual = entitlement_values(lago.entitlements.get(plan.code) or [], replaced)
        found = entitlement_changes(plan.entitlements, actual)
        if not found:
            unchanged["plan_entitlements"] += 1
            continue
        change = Change("update", "plan_entitlements", plan.code, plan, found)
        # A feature kept without values: Lago drops values only with the feature.
        change.deletions = [
            code for code, values in plan.entitlements.items() if not values and actual.get(code)
        ]
        changes.append(change)
    return CatalogPlan(changes, unchanged, only_in_lago)


def _feature_section(
    catalog: Catalog,
    lago: LagoCatalog,
    changes: list[Change],
    unchanged: dict[Kind, int],
    only_in_lago: list[tuple[Kind, str]],
) -> set[tuple[str, str]]:
    """Feature creates and updates; returns the (feature, privilege) pairs made again, whose
    plan values Lago loses with them."""
    replaced: set[tuple[str, str]] = set()
    for feature in catalog.features:
        existing = lago.features.get(feature.code)
        if existing is None:
            changes.append(Change("create", "feature", feature.code, feature))
            continue
        found, deletions, remade = feature_changes(feature, existing)
        replaced |= {(feature.code, code) for code in remade}
        if found:
            change = Change("update", "feature", feature.code, feature, found, existing)
            change.deletions = deletions
            changes.append(change)
        else:
            unchanged["feature"] += 1
    codes = {f.code for f in catalog.features}
    only_in_lago += [("feature", code) for code in lago.features if code not in codes]
    return replaced


def feature_changes(
    feature: Feature, lago_feature: dict[str, Any]
) -> tuple[list[FieldChange], list[str], list[str]]:
    """Field changes of one feature, the privileges to delete first, and those of them that
    are made again (``value_type`` or select options Lago cannot change in place)."""
    mine = set_fields(feature)
    mine.pop("privileges", None)
    found = differences(mine, _pick(lago_feature, Feature), "")
    theirs = {str(p.get("code")): p for p in lago_feature.get("privileges") or []}
    deletions: list[str] = []
    remade: list[str] = []
    for privilege in feature.privileges:
        path = f"privileges[{privilege.code}]"
        existing = theirs.pop(privilege.code, None)
        if existing is None:
            found.append(FieldChange(path, None, "added"))
            continue
        if "name" in privilege.model_fields_set and privilege.name != existing.get("name"):
            found.append(FieldChange(f"{path}.name", existing.get("name"), privilege.name))
        options = set(privilege.config.select_options) if privilege.config else set()
        their_options = set((existing.get("config") or {}).get("select_options") or [])
        if privilege.value_type != existing.get("value_type") or their_options - options:
            found.append(FieldChange(path, "present", "made again"))
            deletions.append(privilege.code)
            remade.append(privilege.code)
        elif options - their_options:
            change = FieldChange(
                f"{path}.config.select_options", sorted(their_options), sorted(options)
            )
            found.append(change)
    for code in theirs:
        found.append(FieldChange(f"privileges[{code}]", "present", "removed"))
        deletions.append(code)
    return found, deletions, remade


def entitlement_values(
    lago_entitlements: list[dict[str, Any]], replaced: set[tuple[str, str]] | None = None
) -> dict[str, dict[str, Any]]:
    """A plan's entitlements as the file writes them: feature code → privilege values (less
    those of privileges apply makes again)."""
    values: dict[str, dict[str, Any]] = {}
    for entitlement in lago_entitlements:
        code = str(entitlement.get("code"))
        values[code] = {
            str(p.get("code")): p.get("value")
            for p in entitlement.get("privileges") or []
            if (code, str(p.get("code"))) not in (replaced or set())
        }
    return values


def entitlement_changes(
    wanted: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]
) -> list[FieldChange]:
    """Field changes of a plan's entitlements: features and privilege values, both ways."""
    found: list[FieldChange] = []
    rest = dict(actual)
    for code, values in wanted.items():
        path = f"entitlements[{code}]"
        existing = rest.pop(code, None)
        if existing is None:
            found.append(FieldChange(path, None, "added"))
            continue
        theirs = dict(existing)
        for name, value in values.items():
            current = theirs.pop(name, None)
            if not same_value(value, current) or isinstance(value, bool) != isinstance(
                current, bool
            ):
                found.append(FieldChange(f"{path}.{name}", current, value))
        found += [FieldChange(f"{path}.{name}", "present", "removed") for name in theirs]
    found += [FieldChange(f"entitlements[{code}]", "present", "removed") for code in rest]
    return found


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
    if isinstance(value, str) and value not in ("added", "removed", "present", "made again"):
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
