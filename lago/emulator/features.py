"""Features and their privileges: created, updated, listed, shown and destroyed.

Follows lago-api's ``app/controllers/api/v1/features_controller.rb`` and
``features/privileges_controller.rb``, the feature and privilege services in
``app/services/entitlement/``, the ``Feature`` and ``Privilege`` models in
``app/models/entitlement/`` and ``V1::Entitlement::FeatureSerializer``
(``app/serializers/v1/entitlement/``). State: ``EmulatorState.features`` by code, each with
its ``privileges``.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id
from .entitlement_values import VALUE_TYPES, blank, server_error, transaction
from .errors import NotFound, ValidationFailed
from .http import ok, paginate, read_root, state_of
from .state import EmulatorState, Record


def _strip(value: Any) -> Any:
    """``params[:code]&.strip``: only strings have it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise server_error()
    return value.strip()


def _feature_errors(feature: Record) -> dict[str, list[str]]:
    """``Entitlement::Feature``'s validations."""
    errors: dict[str, list[str]] = {}
    code = feature.get("code")
    if blank(code):
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
    return blank(config)


def _privilege_errors(privilege: Record) -> dict[str, list[str]]:
    """``Entitlement::Privilege``'s validations, keys prefixed ``privilege.`` as the feature
    services report them."""
    errors: dict[str, list[str]] = {}
    code = privilege.get("code")
    if blank(code):
        errors["privilege.code"] = ["value_is_mandatory"]
    elif len(str(code)) > 255:
        errors["privilege.code"] = ["value_is_too_long"]
    name = privilege.get("name")
    if isinstance(name, str) and len(name) > 255:
        errors["privilege.name"] = ["value_is_too_long"]
    value_type = privilege.get("value_type")
    found: list[str] = []
    if blank(value_type):
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
        raise server_error()
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


def feature_by_id(state: EmulatorState, lago_id: str) -> Record | None:
    return next((f for f in state.features.values() if f["lago_id"] == lago_id), None)


def privilege_by_id(feature: Record, lago_id: str) -> Record | None:
    return next((p for p in feature["privileges"] if p["lago_id"] == lago_id), None)


def privilege_named(feature: Record, code: str) -> Record:
    """The feature's privilege ``code``, or 404 ``privilege_not_found``."""
    for privilege in feature["privileges"]:
        if privilege["code"] == code:
            found: Record = privilege
            return found
    raise NotFound("privilege")


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
    with transaction(state):
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
    with transaction(state):
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
