"""Features, privileges and entitlements: what a plan (or one subscription) unlocks.

Copied from lago-api's ``app/controllers/api/v1/features_controller.rb``,
``features/privileges_controller.rb``, ``plans/entitlements_controller.rb`` (and its
``privileges_controller.rb``), ``subscriptions/entitlements_controller.rb`` (and its
``privileges_controller.rb``), the services in ``app/services/entitlement/``, the models in
``app/models/entitlement/``, ``app/queries/entitlement/subscription_entitlement_query.rb``,
``app/services/utils/entitlement.rb`` and the serializers in ``app/serializers/v1/entitlement/``.

State (``EmulatorState``): ``features`` by code, each with its ``privileges``;
``entitlements`` by ``lago_id``, each holding ``feature_id``, ``plan_id`` *or*
``subscription_id``, and ``values`` (``privilege_id`` → the stored string, as Lago's
``character varying`` column keeps it: ``25`` → ``"25"``, ``true`` → ``"t"``);
``entitlement_removals``, the ``SubscriptionFeatureRemoval`` rows (a feature or a privilege of
the plan taken away from one subscription). Every write is one transaction: a refusal
part-way leaves nothing changed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id
from .errors import LagoError, NotFound, ValidationFailed
from .http import ok, paginate, read_json, read_root, state_of
from .state import EmulatorState, Record

VALUE_TYPES = ("integer", "string", "boolean", "select")
# ActiveModel::Type::Boolean::FALSE_VALUES, as JSON can carry them.
_FALSE_VALUES = (False, 0, "0", "f", "F", "false", "FALSE", "off", "OFF")
_RUBY_TO_I = re.compile(r"\s*([+-]?\d+(?:_\d+)*)")


def _server_error() -> LagoError:
    return LagoError(500, {"status": 500, "error": "Internal Server Error"})


@contextmanager
def _transaction(state: EmulatorState) -> Iterator[None]:
    """``ActiveRecord::Base.transaction``: a Lago error inside restores what was there."""
    saved = copy.deepcopy((state.features, state.entitlements, state.entitlement_removals))
    try:
        yield
    except LagoError:
        state.features, state.entitlements, state.entitlement_removals = saved
        raise


def _blank(value: Any) -> bool:
    """ActiveSupport's ``blank?``."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or value is False or value == [] or value == {}


def _strip(value: Any) -> Any:
    """``params[:code]&.strip``: only strings have it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _server_error()
    return value.strip()


def _stored(value: Any) -> str | None:
    """What a Rails ``string`` column keeps (ActiveModel::Type::ImmutableString#cast_value)."""
    if value is None:
        return None
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise _server_error()


def cast_value(value: Any, value_type: str) -> Any:
    """``Utils::Entitlement.cast_value``: integers by Ruby's ``to_i``, booleans by
    ActiveModel's boolean type, anything else as stored."""
    if value is None:
        return None
    if value_type == "integer":
        if isinstance(value, bool):
            raise _server_error()
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value)
        if isinstance(value, str):
            match = _RUBY_TO_I.match(value)
            return int(match.group(1).replace("_", "")) if match else 0
        raise _server_error()
    if value_type == "boolean":
        if value == "":
            return None
        return not any(value is v or (type(value) is type(v) and value == v) for v in _FALSE_VALUES)
    return value


def _same_value(value_type: str, first: Any, second: Any) -> bool:
    return bool(cast_value(first, value_type) == cast_value(second, value_type))


# -- features ---------------------------------------------------------------------------------


def _feature_errors(feature: Record) -> dict[str, list[str]]:
    """``Entitlement::Feature``'s validations."""
    errors: dict[str, list[str]] = {}
    code = feature.get("code")
    if _blank(code):
        errors["code"] = ["value_is_mandatory"]
    elif len(str(code)) > 255:
        errors["code"] = ["value_is_too_long"]
    for name, limit in (("name", 255), ("description", 600)):
        value = feature.get(name)
        if isinstance(value, str) and len(value) > limit:
            errors[name] = ["value_is_too_long"]
    return errors


def _config_valid(privilege: Record) -> bool:
    """``Privilege#config_valid?``: only ``select`` has a config, ``{"select_options": [...]}``
    with at least one string and nothing else."""
    config = privilege.get("config")
    if privilege.get("value_type") == "select":
        options = config.get("select_options") if isinstance(config, dict) else None
        return (
            isinstance(config, dict)
            and list(config) == ["select_options"]
            and isinstance(options, list)
            and bool(options)
            and all(isinstance(option, str) for option in options)
        )
    return _blank(config)


def _privilege_errors(privilege: Record) -> dict[str, list[str]]:
    """``Entitlement::Privilege``'s validations, keys prefixed ``privilege.`` as the feature
    services report them."""
    errors: dict[str, list[str]] = {}
    code = privilege.get("code")
    if _blank(code):
        errors["privilege.code"] = ["value_is_mandatory"]
    elif len(str(code)) > 255:
        errors["privilege.code"] = ["value_is_too_long"]
    name = privilege.get("name")
    if isinstance(name, str) and len(name) > 255:
        errors["privilege.name"] = ["value_is_too_long"]
    value_type = privilege.get("value_type")
    found: list[str] = []
    if _blank(value_type):
        found.append("value_is_mandatory")
    if value_type not in VALUE_TYPES:
        found.append("value_is_invalid")
    if found:
        errors["privilege.value_type"] = found
    if not _config_valid(privilege):
        errors["privilege.config"] = ["invalid_format"]
    return errors


def _new_privilege(state: EmulatorState, feature: Record, params: dict[str, Any]) -> None:
    """``feature.privileges.new(...)`` then ``save!`` (``value_type`` defaults to string,
    ``config`` to ``{}``, as the columns do)."""
    privilege: Record = {
        "lago_id": new_id(),
        "code": _strip(params.get("code")),
        "name": params.get("name"),
        "value_type": params.get("value_type", "string"),
        "config": params.get("config", {}),
    }
    errors = _privilege_errors(privilege)
    if errors:
        raise ValidationFailed(errors)
    if any(p["code"] == privilege["code"] for p in feature["privileges"]):
        # idx_privileges_code_unique_per_feature; the services only check the payload.
        raise _server_error()
    if privilege["config"] is None:
        privilege["config"] = {}
    feature["privileges"].append(privilege)


def _privilege_params(params: dict[str, Any]) -> list[dict[str, Any]]:
    """``privileges: [:code, :name, :value_type, config: {}]`` as ``permit`` keeps them."""
    items = params.get("privileges")
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]


def _duplicated(privileges: list[dict[str, Any]]) -> bool:
    """``Utils::Entitlement.privilege_code_is_duplicated?``."""
    codes = [p.get("code") for p in privileges]
    return len(codes) != len(set(map(repr, codes)))


def create_feature(state: EmulatorState, params: dict[str, Any]) -> Record:
    """``Entitlement::FeatureCreateService``."""
    privileges = _privilege_params(params)
    if _duplicated(privileges):
        raise ValidationFailed({"privilege.code": ["value_is_duplicated"]})
    feature: Record = {
        "lago_id": new_id(),
        "code": _strip(params.get("code")),
        "name": params.get("name"),
        "description": params.get("description"),
        "created_at": iso(state.now()),
        "sequence": state.next_sequence("entitlement_feature"),
        "privileges": [],
    }
    errors = _feature_errors(feature)
    if errors:
        raise ValidationFailed(errors)
    if feature["code"] in state.features:
        raise ValidationFailed({"code": ["value_already_exist"]})
    for item in privileges:
        _new_privilege(state, feature, item)
    state.features[feature["code"]] = feature
    return feature


def update_feature(state: EmulatorState, feature: Record, params: dict[str, Any]) -> Record:
    """``Entitlement::FeatureUpdateService`` with ``partial: true`` (the API's): privileges
    not named stay; a named one changes ``name``, and gains ``select_options`` (a union)."""
    privileges = _privilege_params(params)
    if _duplicated(privileges):
        raise ValidationFailed({"privilege.code": ["value_is_duplicated"]})
    changed = copy.deepcopy(feature)
    for name in ("name", "description"):
        if name in params:
            changed[name] = params[name]
    for item in privileges:
        existing = next((p for p in changed["privileges"] if p["code"] == item.get("code")), None)
        if existing is None:
            _new_privilege(state, changed, item)
            continue
        if "name" in item:
            existing["name"] = item["name"]
        config = item.get("config")
        options = config.get("select_options") if isinstance(config, dict) else None
        if options:
            current = existing["config"].setdefault("select_options", [])
            existing["config"]["select_options"] = current + [
                o for o in options if o not in current
            ]
        errors = _privilege_errors(existing)
        if errors:
            raise ValidationFailed(errors)
    errors = _feature_errors(changed)
    if errors:
        raise ValidationFailed(errors)
    feature.update(changed)
    return feature


def _serialize_feature(feature: Record) -> Record:
    """``V1::Entitlement::FeatureSerializer``."""
    return {
        "code": feature["code"],
        "name": feature["name"],
        "description": feature["description"],
        "privileges": [
            {
                "code": p["code"],
                "name": p["name"],
                "value_type": p["value_type"],
                "config": p["config"],
            }
            for p in feature["privileges"]
        ],
        "created_at": feature["created_at"],
    }


def get_feature(state: EmulatorState, code: str) -> Record:
    """The feature, or 404 ``feature_not_found``."""
    feature = state.features.get(code)
    if feature is None:
        raise NotFound("feature")
    return feature


def _feature_by_id(state: EmulatorState, lago_id: str) -> Record | None:
    return next((f for f in state.features.values() if f["lago_id"] == lago_id), None)


def _privilege_by_id(feature: Record, lago_id: str) -> Record | None:
    return next((p for p in feature["privileges"] if p["lago_id"] == lago_id), None)


def _matches(feature: Record, term: str) -> bool:
    """FeaturesQuery's ransack ``name_cont``/``code_cont``/``description_cont`` (ILIKE)."""
    needle = term.lower()
    return any(needle in (feature.get(k) or "").lower() for k in ("name", "code", "description"))


async def features_index(request: Request) -> Response:
    """GET /features: newest first (``apply_consistent_ordering``), ``search_term``."""
    state = state_of(request)
    term = (request.query_params.get("search_term") or "").strip()
    found = [f for f in state.features.values() if not term or _matches(f, term)]
    found.sort(key=lambda f: -int(f["sequence"]))
    return paginate(request, "features", [_serialize_feature(f) for f in found])


async def features_create(request: Request) -> Response:
    """POST /features."""
    state = state_of(request)
    params = await read_root(request, "feature")
    with _transaction(state):
        feature = create_feature(state, params)
    return ok({"feature": _serialize_feature(feature)})


async def features_show(request: Request) -> Response:
    """GET /features/{code}."""
    feature = get_feature(state_of(request), request.path_params["code"])
    return ok({"feature": _serialize_feature(feature)})


async def features_update(request: Request) -> Response:
    """PUT (and PATCH) /features/{code}."""
    state = state_of(request)
    feature = get_feature(state, request.path_params["code"])
    params = await read_root(request, "feature")
    with _transaction(state):
        update_feature(state, feature, params)
    return ok({"feature": _serialize_feature(feature)})


async def features_destroy(request: Request) -> Response:
    """DELETE /features/{code}: ``FeatureDestroyService`` discards its entitlements, their
    values and its privileges; the answer, read after that, lists no privileges."""
    state = state_of(request)
    feature = get_feature(state, request.path_params["code"])
    for lago_id in [
        k for k, e in state.entitlements.items() if e["feature_id"] == feature["lago_id"]
    ]:
        del state.entitlements[lago_id]
    del state.features[feature["code"]]
    return ok({"feature": _serialize_feature({**feature, "privileges": []})})


async def feature_privilege_destroy(request: Request) -> Response:
    """DELETE /features/{code}/privileges/{privilege_code}: ``PrivilegeDestroyService``
    discards the privilege and every value given to it."""
    state = state_of(request)
    feature = get_feature(state, request.path_params["code"])
    code = request.path_params["privilege_code"]
    privilege = next((p for p in feature["privileges"] if p["code"] == code), None)
    if privilege is None:
        raise NotFound("privilege")
    feature["privileges"].remove(privilege)
    for entitlement in state.entitlements.values():
        entitlement["values"] = [
            v for v in entitlement["values"] if v["privilege_id"] != privilege["lago_id"]
        ]
    return ok({"feature": _serialize_feature(feature)})


# -- values -----------------------------------------------------------------------------------


def _validate_value(value: Any, privilege: Record) -> Any:
    """``Entitlement::Concerns::CreateOrUpdateConcern#validate_value``."""
    if value is None:
        return value
    key = f"{privilege['code']}_privilege_value"
    kind = privilege["value_type"]
    if kind == "select":
        if isinstance(value, str) and value in (privilege["config"].get("select_options") or []):
            return value
        raise ValidationFailed({key: ["value_not_in_select_options"]})
    if kind == "boolean" and (value is True or value is False or value in ("true", "false")):
        return value
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _ruby_to_s_of_to_i(value) == value:
            return value
    if kind == "string" and isinstance(value, str):
        return value
    raise ValidationFailed({key: ["value_is_invalid"]})


def _ruby_to_s_of_to_i(value: str) -> str:
    match = _RUBY_TO_I.match(value)
    return str(int(match.group(1).replace("_", ""))) if match else "0"


def _new_value(state: EmulatorState, privilege: Record, value: Any) -> Record:
    """``EntitlementValue.create!``: the validated value, stored as a string; a blank one is
    the model's ``presence`` error, reported as ``privilege.value``."""
    stored = _stored(_validate_value(value, privilege))
    if _blank(stored):
        raise ValidationFailed({"privilege.value": ["value_is_mandatory"]})
    sequence = state.next_sequence("entitlement_value")
    return {"privilege_id": privilege["lago_id"], "value": stored, "sequence": sequence}


def _set_value(entry: Record, privilege: Record, value: Any) -> None:
    """``entitlement_value.update!(value: validate_value(...))``."""
    stored = _stored(_validate_value(value, privilege))
    if _blank(stored):
        raise ValidationFailed({"privilege.value": ["value_is_mandatory"]})
    entry["value"] = stored


# -- plan entitlements ------------------------------------------------------------------------


def _plan_of(state: EmulatorState, code: str) -> Record:
    plan = state.plans.get(code)
    if plan is None:
        raise NotFound("plan")
    return plan


def plan_entitlements(state: EmulatorState, plan_id: str) -> list[Record]:
    """The plan's entitlements whose feature still exists, oldest first."""
    found = [e for e in state.entitlements.values() if e.get("plan_id") == plan_id]
    return [e for e in found if _feature_by_id(state, e["feature_id"]) is not None]


def _serialize_plan_entitlement(state: EmulatorState, entitlement: Record) -> Record:
    """``V1::Entitlement::PlanEntitlementSerializer``."""
    feature = _feature_by_id(state, entitlement["feature_id"]) or {}
    privileges = []
    for entry in entitlement["values"]:
        privilege = _privilege_by_id(feature, entry["privilege_id"])
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


def _new_entitlement(state: EmulatorState, feature: Record, **parent: str) -> Record:
    entitlement: Record = {
        "lago_id": new_id(),
        "feature_id": feature["lago_id"],
        "plan_id": parent.get("plan_id"),
        "subscription_id": parent.get("subscription_id"),
        "values": [],
        "sequence": state.next_sequence("entitlement"),
    }
    state.entitlements[entitlement["lago_id"]] = entitlement
    return entitlement


def _privilege_values(raw: Any) -> dict[str, Any]:
    if raw is None or raw == {} or raw == "":
        return {}
    if not isinstance(raw, dict):
        raise _server_error()
    return raw


def update_plan_entitlements(
    state: EmulatorState, plan: Record, params: dict[str, Any], *, partial: bool
) -> None:
    """``Entitlement::PlanEntitlementsUpdateService``: POST replaces (``partial: false``:
    features and, per feature given with values, privileges not named go), PATCH adds and
    changes."""
    existing = plan_entitlements(state, plan["lago_id"])
    if not partial:
        for entitlement in existing:
            owner = _feature_by_id(state, entitlement["feature_id"]) or {}
            if owner.get("code") not in params:
                del state.entitlements[entitlement["lago_id"]]
    for feature_code, raw in params.items():
        feature = state.features.get(feature_code)
        if feature is None:
            raise NotFound("feature")
        values = _privilege_values(raw)
        found = [
            e
            for e in plan_entitlements(state, plan["lago_id"])
            if e["feature_id"] == feature["lago_id"]
        ]
        if not found:
            entitlement = _new_entitlement(state, feature, plan_id=plan["lago_id"])
        elif not partial and values:
            entitlement = found[0]
            keep = {p["lago_id"] for p in feature["privileges"] if p["code"] in values}
            entitlement["values"] = [v for v in entitlement["values"] if v["privilege_id"] in keep]
        else:
            entitlement = found[0]
        _set_plan_values(state, feature, entitlement, values)


def _privilege_named(feature: Record, code: str) -> Record:
    """The feature's privilege ``code``, or 404 ``privilege_not_found``."""
    for privilege in feature["privileges"]:
        if privilege["code"] == code:
            found: Record = privilege
            return found
    raise NotFound("privilege")


def _set_plan_values(
    state: EmulatorState, feature: Record, entitlement: Record, values: dict[str, Any]
) -> None:
    """``update_entitlement_values``: change a privilege's value, or add it."""
    for privilege_code, value in values.items():
        privilege = _privilege_named(feature, privilege_code)
        entry = next(
            (v for v in entitlement["values"] if v["privilege_id"] == privilege["lago_id"]),
            None,
        )
        if entry is None:
            entitlement["values"].append(_new_value(state, privilege, value))
        else:
            _set_value(entry, privilege, value)


async def _entitlements_params(request: Request) -> dict[str, Any]:
    """``params.fetch(:entitlements, {}).permit!``: absent is ``{}``; not an object is 500."""
    body = await read_json(request)
    value = body.get("entitlements", {}) if isinstance(body, dict) else {}
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _server_error()
    return value


def _plan_entitlements_answer(state: EmulatorState, plan: Record) -> Response:
    entitlements = plan_entitlements(state, plan["lago_id"])
    return ok({"entitlements": [_serialize_plan_entitlement(state, e) for e in entitlements]})


def _plan_entitlement(state: EmulatorState, plan: Record, feature_code: str) -> Record:
    for entitlement in plan_entitlements(state, plan["lago_id"]):
        feature = _feature_by_id(state, entitlement["feature_id"])
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
    params = await _entitlements_params(request)
    with _transaction(state):
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
    feature = _feature_by_id(state, entitlement["feature_id"]) or {"privileges": []}
    code = request.path_params["privilege_code"]
    ids = {p["lago_id"] for p in feature["privileges"] if p["code"] == code}
    entry = next((v for v in entitlement["values"] if v["privilege_id"] in ids), None)
    if entry is None:
        raise NotFound("privilege")
    entitlement["values"].remove(entry)
    return ok({"entitlement": _serialize_plan_entitlement(state, entitlement)})


# -- subscription entitlements ----------------------------------------------------------------


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
        feature = _feature_by_id(state, any_row["feature_id"])
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
        privilege = _privilege_by_id(feature, privilege_id)
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
        se = _new_entitlement(state, feature, subscription_id=subscription["lago_id"])
        for code, value in values.items():
            se["values"].append(_new_value(state, _privilege_named(feature, code), value))
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
        se = _new_entitlement(state, feature, subscription_id=subscription["lago_id"])
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
        privilege = _privilege_named(feature, code)
        kind = privilege["value_type"]
        plan_entry = next(
            (v for v in plan_values if v["privilege_id"] == privilege["lago_id"]), None
        )
        sub_entry = next(
            (v for v in se["values"] if v["privilege_id"] == privilege["lago_id"]), None
        )
        if plan_entry is not None and _same_value(kind, value, plan_entry["value"]):
            if sub_entry is not None:
                se["values"].remove(sub_entry)
            _drop_removals(state, subscription, privilege_ids={privilege["lago_id"]})
        elif sub_entry is None:
            _drop_removals(state, subscription, privilege_ids={privilege["lago_id"]})
            se["values"].append(_new_value(state, privilege, value))
        elif not _same_value(kind, value, sub_entry["value"]):
            _set_value(sub_entry, privilege, value)


def _same_as_plan(feature: Record, pe: Record, values: dict[str, Any]) -> bool:
    """``privilege_params_same_as_plan?``."""
    by_id = {p["lago_id"]: p for p in feature["privileges"]}
    plan_values = [
        (by_id[v["privilege_id"]], v["value"]) for v in pe["values"] if v["privilege_id"] in by_id
    ]
    if sorted(values) != sorted(p["code"] for p, _ in plan_values):
        return False
    return all(_same_value(p["value_type"], stored, values[p["code"]]) for p, stored in plan_values)


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
        _update_one(state, subscription, feature, _privilege_values(raw))


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
    params = await _entitlements_params(request)
    with _transaction(state):
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
