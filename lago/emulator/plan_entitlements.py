"""Plan entitlements: the features (and privilege values) a plan unlocks.

Follows lago-api's ``app/controllers/api/v1/plans/entitlements_controller.rb`` (and its
``privileges_controller.rb``), ``Entitlement::PlanEntitlementsUpdateService`` in
``app/services/entitlement/`` and ``V1::Entitlement::PlanEntitlementSerializer``
(``app/serializers/v1/entitlement/``). State: ``EmulatorState.entitlements`` rows with a
``plan_id``.
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
    set_value,
    transaction,
)
from .errors import NotFound
from .features import feature_by_id, privilege_by_id, privilege_named
from .http import ok, state_of
from .state import EmulatorState, Record


def _plan_of(state: EmulatorState, code: str) -> Record:
    plan = state.plans.get(code)
    if plan is None:
        raise NotFound("plan")
    return plan


def plan_entitlements(state: EmulatorState, plan_id: str) -> list[Record]:
    """The plan's entitlements whose feature still exists, oldest first."""
    found = [e for e in state.entitlements.values() if e.get("plan_id") == plan_id]
    return [e for e in found if feature_by_id(state, e["feature_id"]) is not None]


def _serialize_plan_entitlement(state: EmulatorState, entitlement: Record) -> Record:
    """``V1::Entitlement::PlanEntitlementSerializer``."""
    feature = feature_by_id(state, entitlement["feature_id"]) or {}
    privileges = []
    for entry in entitlement["values"]:
        privilege = privilege_by_id(feature, entry["privilege_id"])
        if privilege is None:
            continue
        privileges.append(
            {
                "code": privilege["code"],
                "name": privilege["name"],
                "value_type": privilege["value_type"],
                "value": cast_value(entry["value"], privilege["value_type"]),
                "config": privilege["config"],
            }
        )
    return {
        "code": feature.get("code"),
        "name": feature.get("name"),
        "description": feature.get("description"),
        "privileges": privileges,
    }


def update_plan_entitlements(
    state: EmulatorState, plan: Record, params: dict[str, Any], *, partial: bool
) -> None:
    """``Entitlement::PlanEntitlementsUpdateService``: POST replaces (``partial: false``:
    features and, per feature given with values, privileges not named go), PATCH adds and
    changes."""
    existing = plan_entitlements(state, plan["lago_id"])
    if not partial:
        for entitlement in existing:
            owner = feature_by_id(state, entitlement["feature_id"]) or {}
            if owner.get("code") not in params:
                del state.entitlements[entitlement["lago_id"]]
    for feature_code, raw in params.items():
        feature = state.features.get(feature_code)
        if feature is None:
            raise NotFound("feature")
        values = privilege_values(raw)
        found = [
            e
            for e in plan_entitlements(state, plan["lago_id"])
            if e["feature_id"] == feature["lago_id"]
        ]
        if not found:
            entitlement = new_entitlement(state, feature, plan_id=plan["lago_id"])
        elif not partial and values:
            entitlement = found[0]
            keep = {p["lago_id"] for p in feature["privileges"] if p["code"] in values}
            entitlement["values"] = [v for v in entitlement["values"] if v["privilege_id"] in keep]
        else:
            entitlement = found[0]
        _set_plan_values(state, feature, entitlement, values)


def _set_plan_values(
    state: EmulatorState, feature: Record, entitlement: Record, values: dict[str, Any]
) -> None:
    """``update_entitlement_values``: change a privilege's value, or add it."""
    for privilege_code, value in values.items():
        privilege = privilege_named(feature, privilege_code)
        entry = next(
            (v for v in entitlement["values"] if v["privilege_id"] == privilege["lago_id"]),
            None,
        )
        if entry is None:
            entitlement["values"].append(new_value(state, privilege, value))
        else:
            set_value(entry, privilege, value)


def _plan_entitlements_answer(state: EmulatorState, plan: Record) -> Response:
    entitlements = plan_entitlements(state, plan["lago_id"])
    return ok({"entitlements": [_serialize_plan_entitlement(state, e) for e in entitlements]})


def _plan_entitlement(state: EmulatorState, plan: Record, feature_code: str) -> Record:
    for entitlement in plan_entitlements(state, plan["lago_id"]):
        feature = feature_by_id(state, entitlement["feature_id"])
        if feature is not None and feature["code"] == feature_code:
            return entitlement
    raise NotFound("entitlement")


async def plan_index(request: Request) -> Response:
    """GET /plans/{code}/entitlements."""
    state = state_of(request)
    return _plan_entitlements_answer(state, _plan_of(state, request.path_params["code"]))


async def plan_create(request: Request) -> Response:
    """POST /plans/{code}/entitlements: replaces the plan's entitlements."""
    return await _plan_update(request, partial=False)


async def plan_update(request: Request) -> Response:
    """PATCH /plans/{code}/entitlements: adds and changes, removes nothing."""
    return await _plan_update(request, partial=True)


async def _plan_update(request: Request, *, partial: bool) -> Response:
    state = state_of(request)
    plan = _plan_of(state, request.path_params["code"])
    params = await entitlements_params(request)
    with transaction(state):
        update_plan_entitlements(state, plan, params, partial=partial)
    return _plan_entitlements_answer(state, plan)


async def plan_show(request: Request) -> Response:
    """GET /plans/{code}/entitlements/{feature_code}."""
    state = state_of(request)
    plan = _plan_of(state, request.path_params["code"])
    entitlement = _plan_entitlement(state, plan, request.path_params["feature_code"])
    return ok({"entitlement": _serialize_plan_entitlement(state, entitlement)})


async def plan_destroy(request: Request) -> Response:
    """DELETE /plans/{code}/entitlements/{feature_code}: answered as it was."""
    state = state_of(request)
    plan = _plan_of(state, request.path_params["code"])
    entitlement = _plan_entitlement(state, plan, request.path_params["feature_code"])
    answer = _serialize_plan_entitlement(state, entitlement)
    del state.entitlements[entitlement["lago_id"]]
    return ok({"entitlement": answer})


async def plan_privilege_destroy(request: Request) -> Response:
    """DELETE /plans/{code}/entitlements/{feature_code}/privileges/{privilege_code}."""
    state = state_of(request)
    plan = _plan_of(state, request.path_params["code"])
    entitlement = _plan_entitlement(state, plan, request.path_params["feature_code"])
    feature = feature_by_id(state, entitlement["feature_id"]) or {"privileges": []}
    code = request.path_params["privilege_code"]
    ids = {p["lago_id"] for p in feature["privileges"] if p["code"] == code}
    entry = next((v for v in entitlement["values"] if v["privilege_id"] in ids), None)
    if entry is None:
        raise NotFound("privilege")
    entitlement["values"].remove(entry)
    return ok({"entitlement": _serialize_plan_entitlement(state, entitlement)})
