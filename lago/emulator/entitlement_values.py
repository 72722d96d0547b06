"""Entitlement values: a privilege's value validated, stored and cast as Lago does, and the
helpers every entitlement write shares (the transaction, a new entitlement row, the
``entitlements`` payload).

Follows lago-api's ``app/services/utils/entitlement.rb`` (``cast_value``), the value checks
of the services in ``app/services/entitlement/`` (``Concerns::CreateOrUpdateConcern``) and the
``EntitlementValue`` model in ``app/models/entitlement/``. A value is kept as Lago's
``character varying`` column keeps it: ``25`` → ``"25"``, ``true`` → ``"t"``. Every write
runs in ``transaction``: a refusal part-way leaves nothing changed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request

from .clock import new_id
from .errors import LagoError, ValidationFailed
from .http import read_json
from .state import EmulatorState, Record

VALUE_TYPES = ("integer", "string", "boolean", "select")


# ActiveModel::Type::Boolean::FALSE_VALUES, as JSON can carry them.
_FALSE_VALUES = (False, 0, "0", "f", "F", "false", "FALSE", "off", "OFF")


_RUBY_TO_I = re.compile(r"\s*([+-]?\d+(?:_\d+)*)")


def server_error() -> LagoError:
    return LagoError(500, {"status": 500, "error": "Internal Server Error"})


@contextmanager
def transaction(state: EmulatorState) -> Iterator[None]:
    """``ActiveRecord::Base.transaction``: a Lago error inside restores what was there."""
    saved = copy.deepcopy((state.features, state.entitlements, state.entitlement_removals))
    try:
        yield
    except LagoError:
        state.features, state.entitlements, state.entitlement_removals = saved
        raise


def blank(value: Any) -> bool:
    """ActiveSupport's ``blank?``."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or value is False or value == [] or value == {}


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
    raise server_error()


def cast_value(value: Any, value_type: str) -> Any:
    """``Utils::Entitlement.cast_value``: integers by Ruby's ``to_i``, booleans by
    ActiveModel's boolean type, anything else as stored."""
    if value is None:
        return None
    if value_type == "integer":
        if isinstance(value, bool):
            raise server_error()
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value)
        if isinstance(value, str):
            match = _RUBY_TO_I.match(value)
            return int(match.group(1).replace("_", "")) if match else 0
        raise server_error()
    if value_type == "boolean":
        if value == "":
            return None
        return not any(value is v or (type(value) is type(v) and value == v) for v in _FALSE_VALUES)
    return value


def same_value(value_type: str, first: Any, second: Any) -> bool:
    return bool(cast_value(first, value_type) == cast_value(second, value_type))


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


def new_value(state: EmulatorState, privilege: Record, value: Any) -> Record:
    """``EntitlementValue.create!``: the validated value, stored as a string; a blank one is
    the model's ``presence`` error, reported as ``privilege.value``."""
    stored = _stored(_validate_value(value, privilege))
    if blank(stored):
        raise ValidationFailed({"privilege.value": ["value_is_mandatory"]})
    sequence = state.next_sequence("entitlement_value")
    return {"privilege_id": privilege["lago_id"], "value": stored, "sequence": sequence}


def set_value(entry: Record, privilege: Record, value: Any) -> None:
    """``entitlement_value.update!(value: validate_value(...))``."""
    stored = _stored(_validate_value(value, privilege))
    if blank(stored):
        raise ValidationFailed({"privilege.value": ["value_is_mandatory"]})
    entry["value"] = stored


def new_entitlement(state: EmulatorState, feature: Record, **parent: str) -> Record:
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


def privilege_values(raw: Any) -> dict[str, Any]:
    if raw is None or raw == {} or raw == "":
        return {}
    if not isinstance(raw, dict):
        raise server_error()
    return raw


async def entitlements_params(request: Request) -> dict[str, Any]:
    """``params.fetch(:entitlements, {}).permit!``: absent is ``{}``; not an object is 500."""
    body = await read_json(request)
    value = body.get("entitlements", {}) if isinstance(body, dict) else {}
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise server_error()
    return value
