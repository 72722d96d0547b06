"""Subscription entitlements: one subscription's overrides of its plan's entitlements, and
the features or privileges of the plan taken away from it.

Follows lago-api's ``app/controllers/api/v1/subscriptions/entitlements_controller.rb`` (and
its ``privileges_controller.rb``), the subscription services in ``app/services/entitlement/``
(``SubscriptionEntitlementsUpdateService``, ``SubscriptionFeatureRemoveService``,
``SubscriptionFeaturePrivilegeRemoveService``),
``app/queries/entitlement/subscription_entitlement_query.rb`` and
``V1::Entitlement::SubscriptionEntitlementSerializer`` (``app/serializers/v1/entitlement/``).
State: ``EmulatorState.entitlements`` rows with a ``subscription_id``, and
``entitlement_removals``, the ``SubscriptionFeatureRemoval`` rows.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .entitlement_values import (
    cast_value,
    entitlements_params,
    new_entitlement,
    new_value,
    privilege_values,
    same_value,
    set_value,
    transaction,
)
from .errors import NotFound
from .features import feature_by_id, privilege_by_id, privilege_named
from .http import ok, state_of
from .state import EmulatorState, Record


def _subscription_of(request: Request) -> Record:
    """``find_subscription``: ``subscription_status`` (or ``status``, default active)."""
    params = request.query_params
    status = params.get("subscription_status") or params.get("status") or "active"
    found = state_of(request).subscription(request.path_params["external_id"], status)
    if found is None:
        raise NotFound("subscription")
    return found


def _plan_id_of(state: EmulatorState, subscription: Record) -> str | None:
    plan = state.plans.get(subscription["plan_code"])
    return None if plan is None else str(plan["lago_id"])


def _removed(state: EmulatorState, subscription: Record, kind: str) -> set[str]:
    return {
        str(r[kind])
        for r in state.entitlement_removals
        if r["subscription_id"] == subscription["lago_id"] and r.get(kind)
    }


def _sub_entitlement(state: EmulatorState, subscription: Record, feature: Record) -> Record | None:
    return next(
        (
            e
            for e in state.entitlements.values()
            if e.get("subscription_id") == subscription["lago_id"]
            and e["feature_id"] == feature["lago_id"]
        ),
        None,
    )


def subscription_entitlements(state: EmulatorState, subscription: Record) -> list[Record]:
    """``Entitlement::SubscriptionEntitlement.for_subscription``, serialized: the plan's
    entitlements joined with the subscription's own, less what the subscription removed."""
    plan_id = _plan_id_of(state, subscription)
    plan_rows = [e for e in state.entitlements.values() if plan_id and e.get("plan_id") == plan_id]
    sub_rows = [
        e
        for e in state.entitlements.values()
        if e.get("subscription_id") == subscription["lago_id"]
    ]
    removed_features = _removed(state, subscription, "feature_id")
    removed_privileges = _removed(state, subscription, "privilege_id")
    answer: list[Record] = []
    rows: list[tuple[Record | None, Record | None]] = [
        (pe, next((se for se in sub_rows if se["feature_id"] == pe["feature_id"]), None))
        for pe in plan_rows
    ]
    planned = {pe["feature_id"] for pe in plan_rows}
    rows += [(None, se) for se in sub_rows if se["feature_id"] not in planned]
    rows.sort(key=lambda row: int((row[0] or row[1] or {})["sequence"]))
    for pe, se in rows:
        any_row = pe or se
        assert any_row is not None
        feature = feature_by_id(state, any_row["feature_id"])
        if feature is None or (pe is not None and pe["feature_id"] in removed_features):
            continue
        answer.append(_serialize_sub_entitlement(feature, pe, se, removed_privileges))
    return answer


def _serialize_sub_entitlement(
    feature: Record, pe: Record | None, se: Record | None, removed_privileges: set[str]
) -> Record:
    """``V1::Entitlement::SubscriptionEntitlementSerializer``."""
    plan_entries = {v["privilege_id"]: v for v in (pe or {}).get("values", [])}
    sub_entries = {v["privilege_id"]: v for v in (se or {}).get("values", [])}
    plan_values = {k: v["value"] for k, v in plan_entries.items()}
    sub_values = {k: v["value"] for k, v in sub_entries.items()}
    first = {**sub_entries, **plan_entries}
    order = sorted(first, key=lambda k: int(first[k]["sequence"]))
    privileges, overrides = [], {}
    for privilege_id in order:
        privilege = privilege_by_id(feature, privilege_id)
        if privilege is None:
            continue
        if privilege_id in plan_values and privilege_id in removed_privileges:
            continue
        kind = privilege["value_type"]
        plan_value, sub_value = plan_values.get(privilege_id), sub_values.get(privilege_id)
        value = sub_value if sub_value is not None else plan_value
        privileges.append(
            {
                "code": privilege["code"],
                "name": privilege["name"],
                "value_type": kind,
                "value": cast_value(value, kind),
                "plan_value": cast_value(plan_value, kind),
                "override_value": cast_value(sub_value, kind),
                "config": privilege["config"],
            }
        )
        if sub_value is not None:
            overrides[privilege["code"]] = cast_value(sub_value, kind)
    return {
        "code": feature["code"],
        "name": feature["name"],
        "description": feature["description"],
        "privileges": privileges,
        "overrides": overrides,
    }


def _drop_removals(state: EmulatorState, subscription: Record, **match: Any) -> None:
    """Soft-delete the subscription's removals of a feature (``feature_id``) or of any of a
    set of privileges (``privilege_ids``)."""
    feature_id = match.get("feature_id")
    privilege_ids = match.get("privilege_ids") or set()

    def hit(removal: Record) -> bool:
        if removal["subscription_id"] != subscription["lago_id"]:
            return False
        return bool(
            (feature_id and removal.get("feature_id") == feature_id)
            or removal.get("privilege_id") in privilege_ids
        )

    state.entitlement_removals = [r for r in state.entitlement_removals if not hit(r)]


def _add_removal(state: EmulatorState, subscription: Record, **target: str) -> None:
    """``SubscriptionFeatureRemoval.insert_all(..., unique_by: ...)``: at most one each."""
    row = {"subscription_id": subscription["lago_id"], **target}
    if not any(all(r.get(k) == v for k, v in row.items()) for r in state.entitlement_removals):
        state.entitlement_removals.append(row)


def _update_one(
    state: EmulatorState, subscription: Record, feature: Record, values: dict[str, Any]
) -> None:
    """``Entitlement::SubscriptionEntitlementCoreUpdateService`` with ``partial: true``."""
    plan_id = _plan_id_of(state, subscription)
    pe = next(
        (
            e
            for e in state.entitlements.values()
            if plan_id and e.get("plan_id") == plan_id and e["feature_id"] == feature["lago_id"]
        ),
        None,
    )
    se = _sub_entitlement(state, subscription, feature)
    if pe is None and se is None:
        _drop_removals(state, subscription, feature_id=feature["lago_id"])
        se = new_entitlement(state, feature, subscription_id=subscription["lago_id"])
        for code, value in values.items():
            se["values"].append(new_value(state, privilege_named(feature, code), value))
        return
    if pe is not None and _same_as_plan(feature, pe, values):
        if se is not None:
            del state.entitlements[se["lago_id"]]
        privilege_ids = {p["lago_id"] for p in feature["privileges"]}
        _drop_removals(
            state, subscription, feature_id=feature["lago_id"], privilege_ids=privilege_ids
        )
        return
    _drop_removals(state, subscription, feature_id=feature["lago_id"])
    if se is None:
        se = new_entitlement(state, feature, subscription_id=subscription["lago_id"])
    _override_values(state, subscription, feature, (pe or {}).get("values", []), se, values)


def _override_values(
    state: EmulatorState,
    subscription: Record,
    feature: Record,
    plan_values: list[Record],
    se: Record,
    values: dict[str, Any],
) -> None:
    """``update_values_for_subscription``: a value equal to the plan's drops the override."""
    for code, value in values.items():
        privilege = privilege_named(feature, code)
        kind = privilege["value_type"]
        plan_entry = next(
            (v for v in plan_values if v["privilege_id"] == privilege["lago_id"]), None
        )
        sub_entry = next(
            (v for v in se["values"] if v["privilege_id"] == privilege["lago_id"]), None
        )
        if plan_entry is not None and same_value(kind, value, plan_entry["value"]):
            if sub_entry is not None:
                se["values"].remove(sub_entry)
            _drop_removals(state, subscription, privilege_ids={privilege["lago_id"]})
        elif sub_entry is None:
            _drop_removals(state, subscription, privilege_ids={privilege["lago_id"]})
            se["values"].append(new_value(state, privilege, value))
        elif not same_value(kind, value, sub_entry["value"]):
            set_value(sub_entry, privilege, value)


def _same_as_plan(feature: Record, pe: Record, values: dict[str, Any]) -> bool:
    """``privilege_params_same_as_plan?``."""
    by_id = {p["lago_id"]: p for p in feature["privileges"]}
    plan_values = [
        (by_id[v["privilege_id"]], v["value"]) for v in pe["values"] if v["privilege_id"] in by_id
    ]
    if sorted(values) != sorted(p["code"] for p, _ in plan_values):
        return False
    return all(same_value(p["value_type"], stored, values[p["code"]]) for p, stored in plan_values)


def update_subscription_entitlements(
    state: EmulatorState, subscription: Record, params: dict[str, Any]
) -> None:
    """``Entitlement::SubscriptionEntitlementsUpdateService`` (``partial: true``)."""
    if not params:
        return
    features = {code: state.features.get(code) for code in params}
    if any(feature is None for feature in features.values()):
        raise NotFound("feature")
    for code, raw in params.items():
        feature = features[code]
        assert feature is not None
        _update_one(state, subscription, feature, privilege_values(raw))


def _subscription_answer(state: EmulatorState, subscription: Record) -> Response:
    return ok({"entitlements": subscription_entitlements(state, subscription)})


async def subscription_index(request: Request) -> Response:
    """GET /subscriptions/{external_id}/entitlements."""
    return _subscription_answer(state_of(request), _subscription_of(request))


async def subscription_update(request: Request) -> Response:
    """PATCH /subscriptions/{external_id}/entitlements: overrides; a value equal to the
    plan's drops the override."""
    state = state_of(request)
    subscription = _subscription_of(request)
    params = await entitlements_params(request)
    with transaction(state):
        update_subscription_entitlements(state, subscription, params)
    return _subscription_answer(state, subscription)


async def subscription_destroy(request: Request) -> Response:
    """DELETE /subscriptions/{external_id}/entitlements/{feature_code}:
    ``SubscriptionFeatureRemoveService`` drops the override and, when the plan has the
    feature, removes it from this subscription. Answers the whole list, as Lago does."""
    state = state_of(request)
    subscription = _subscription_of(request)
    feature = state.features.get(request.path_params["feature_code"])
    if feature is None:
        raise NotFound("feature")
    se = _sub_entitlement(state, subscription, feature)
    if se is not None:
        del state.entitlements[se["lago_id"]]
    privilege_ids = {p["lago_id"] for p in feature["privileges"]}
    _drop_removals(state, subscription, privilege_ids=privilege_ids)
    plan_id = _plan_id_of(state, subscription)
    if any(
        e.get("plan_id") == plan_id and e["feature_id"] == feature["lago_id"]
        for e in state.entitlements.values()
        if plan_id
    ):
        _add_removal(state, subscription, feature_id=feature["lago_id"])
    return _subscription_answer(state, subscription)


async def subscription_privilege_destroy(request: Request) -> Response:
    """DELETE /subscriptions/{external_id}/entitlements/{feature_code}/privileges/{code}:
    ``SubscriptionFeaturePrivilegeRemoveService``."""
    state = state_of(request)
    subscription = _subscription_of(request)
    feature = state.features.get(request.path_params["feature_code"])
    if feature is None:
        raise NotFound("feature")
    code = request.path_params["privilege_code"]
    privilege = next((p for p in feature["privileges"] if p["code"] == code), None)
    if privilege is None:
        raise NotFound("privilege")
    se = _sub_entitlement(state, subscription, feature)
    if se is not None:
        se["values"] = [v for v in se["values"] if v["privilege_id"] != privilege["lago_id"]]
    plan_id = _plan_id_of(state, subscription)
    if any(
        e.get("plan_id") == plan_id and e["feature_id"] == feature["lago_id"]
        for e in state.entitlements.values()
        if plan_id
    ):
        _add_removal(state, subscription, privilege_id=privilege["lago_id"])
    return _subscription_answer(state, subscription)
