"""What a plan entitles, from the catalog: which feature an event needs, and whether the plan
(with one subscription's overrides) has it. Pure functions, no I/O.

A feature gates usage through its gateway-only rules: ``metric`` (any event of that metric
needs it) and ``properties`` (an event whose property holds one of the listed values needs
it; with ``metric`` too, both must match). A plan has a feature when its ``entitlements``
name it. An integer privilege with ``limits`` caps an event property of the events its
feature gates (``max_clip_seconds`` caps ``seconds``): the plan's value is the most allowed.
Overrides are one subscription's differences from its plan, as Lago keeps them
(``PATCH /subscriptions/{id}/entitlements`` adds or changes, ``DELETE`` removes):
feature code → privilege values (added or changed), or ``None`` (removed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.catalog.features import Feature, property_number, property_text
from gateway.catalog.schemas import Catalog

PrivilegeValues = dict[str, Any]
Overrides = Mapping[str, Mapping[str, Any] | None]


@dataclass(frozen=True)
class Refusal:
    """The feature an event needs and the plan lacks."""

    feature: str
    feature_name: str | None
    plan_code: str | None
    metric: str
    # The event property (key, value) that made the feature necessary; None: the metric did.
    matched_property: tuple[str, str] | None = None

    @property
    def message(self) -> str:
        what = self.feature_name or self.feature
        plan = f"plan {self.plan_code}" if self.plan_code else "no subscription"
        if self.matched_property is not None:
            key, value = self.matched_property
            return f"{self.metric} with {key}={value} needs {what}, which {plan} does not include"
        return f"{self.metric} needs {what}, which {plan} does not include"


def features_of(
    catalog: Catalog, plan_code: str | None, overrides: Overrides | None = None
) -> dict[str, PrivilegeValues]:
    """The plan's features and their privilege values, with ``overrides`` applied: feature
    code → privilege code → value. No plan (or one the catalog does not know): only what
    the overrides add."""
    plan = catalog.plan(plan_code) if plan_code else None
    found: dict[str, PrivilegeValues] = {}
    if plan is not None:
        found = {code: dict(values) for code, values in plan.entitlements.items()}
    for code, values in (overrides or {}).items():
        if values is None:
            found.pop(code, None)
        else:
            found[code] = {**found.get(code, {}), **values}
    return found


def refusal(
    catalog: Catalog,
    plan_code: str | None,
    metric: str,
    properties: Mapping[str, Any],
    overrides: Overrides | None = None,
) -> Refusal | None:
    """The first feature (in the catalog's order) this event needs and the plan lacks; None
    when entitled, when no feature gates this event, or when the plan is not in the catalog
    (its entitlements are unknown here). ``plan_code`` None (no subscription) has only what
    ``overrides`` add."""
    gates = [f for f in catalog.features if f.gates_usage]
    if not gates:
        return None
    if plan_code is not None and catalog.plan(plan_code) is None:
        return None
    entitled = features_of(catalog, plan_code, overrides)
    for feature in gates:
        if feature.code in entitled:
            continue
        matched, hit = _needs(feature, metric, properties)
        if matched:
            return Refusal(feature.code, feature.name, plan_code, metric, hit)
    return None


@dataclass(frozen=True)
class Excess:
    """An event property above the cap a privilege of the plan sets."""

    feature: str
    privilege: str
    limit: int
    key: str  # the event property
    value: float

    @property
    def message(self) -> str:
        return f"{self.key} {self.value:g} is above {self.privilege} {self.limit}"


def excess(
    catalog: Catalog,
    plan_code: str | None,
    metric: str,
    properties: Mapping[str, Any],
    overrides: Overrides | None = None,
) -> Excess | None:
    """The first capped privilege (catalog order) the event goes beyond: of a feature the
    plan has (overrides applied) that gates this event, whose value the plan sets. A
    property that is absent or not a number is not capped."""
    entitled = features_of(catalog, plan_code, overrides)
    for feature in catalog.features:
        values = entitled.get(feature.code)
        if values is None or not feature.gates_usage or not _needs(feature, metric, properties)[0]:
            continue
        for privilege in feature.privileges:
            cap = values.get(privilege.code)
            if privilege.limits is None or isinstance(cap, bool) or not isinstance(cap, int):
                continue
            value = property_number(properties.get(privilege.limits))
            if value is not None and value > cap:
                return Excess(feature.code, privilege.code, cap, privilege.limits, value)
    return None


def _needs(
    feature: Feature, metric: str, properties: Mapping[str, Any]
) -> tuple[bool, tuple[str, str] | None]:
    """Whether an event needs ``feature``, and the property that made it so."""
    if feature.metric is not None and feature.metric != metric:
        return False, None
    hit: tuple[str, str] | None = None
    for key, values in feature.properties.items():
        if key not in properties or properties[key] is None:
            return False, None
        text = property_text(properties[key])
        if text not in values:
            return False, None
        hit = hit or (key, text)
    return True, hit


def overrides_from_lago(
    catalog: Catalog, plan_code: str | None, entitlements: Iterable[Mapping[str, Any]]
) -> dict[str, PrivilegeValues | None]:
    """Overrides from Lago's ``GET /subscriptions/{id}/entitlements`` answer (the features
    the subscription has, overrides applied): what it has beyond or unlike the plan in the
    catalog, and ``None`` for the plan's features it no longer has."""
    plan = features_of(catalog, plan_code)
    has: dict[str, PrivilegeValues] = {}
    for entitlement in entitlements:
        privileges = entitlement.get("privileges") or []
        has[str(entitlement.get("code"))] = {
            str(p.get("code")): p.get("value") for p in privileges if isinstance(p, Mapping)
        }
    found: dict[str, PrivilegeValues | None] = {code: None for code in plan if code not in has}
    for code, values in has.items():
        if plan.get(code) != values:
            found[code] = values
    return found
