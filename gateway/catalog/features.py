"""A catalog feature (``POST /features``) and its privileges, with the gateway-only rules
saying which events need the feature (``metric``, ``properties``) and which event property
an integer privilege caps (``limits``); none of them go to Lago."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from gateway.catalog.fields import Code, Strict

VALUE_TYPES = ("integer", "string", "boolean", "select")


class PrivilegeConfig(Strict):
    select_options: list[str] = Field(min_length=1)


class Privilege(Strict):
    """One privilege of a feature: a value each plan sets (``max_resolution: 2048``)."""

    code: Code
    name: str | None = None
    value_type: Literal["integer", "string", "boolean", "select"] = "string"
    config: PrivilegeConfig | None = None
    # Gateway-only: the event property an integer privilege caps (``max_clip_seconds`` caps
    # ``seconds``): a hold whose property is above the plan's value is refused.
    limits: str | None = Field(default=None, min_length=1, max_length=255, exclude=True)

    @model_validator(mode="after")
    def _config_only_for_select(self) -> Privilege:
        if self.value_type == "select" and self.config is None:
            raise ValueError("a select privilege needs config.select_options")
        if self.value_type != "select" and self.config is not None:
            raise ValueError("only a select privilege has a config")
        if self.limits is not None and self.value_type != "integer":
            raise ValueError("only an integer privilege limits a property")
        return self

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` fits this privilege (an option of a select)."""
        if self.value_type == "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.value_type == "boolean":
            return isinstance(value, bool)
        if self.value_type == "select":
            return self.config is not None and value in self.config.select_options
        return isinstance(value, str)


def property_text(value: Any) -> str:
    """An event property value as the rules compare it (``true``, ``2``, ``hd``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def property_number(value: Any) -> float | None:
    """A property as a number, as Lago reads it (a JSON number or numeric text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = Decimal(value)
        except InvalidOperation:
            return None
        return float(parsed) if parsed.is_finite() else None
    return None


def _property_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
    return value


class Feature(Strict):
    """``POST /features`` body, plus gateway-only rules saying which events need it.

    ``metric``: an event of that metric needs the feature; ``properties``: an event whose
    properties hold one of these values needs it (both set: both must match).
    """

    code: Code
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=600)
    privileges: list[Privilege] = []
    metric: Code | None = Field(default=None, exclude=True)
    properties: Annotated[
        dict[str, list[Annotated[str, BeforeValidator(property_text)]]],
        BeforeValidator(_property_values),
    ] = Field(default={}, exclude=True)

    def privilege(self, code: str) -> Privilege | None:
        return next((p for p in self.privileges if p.code == code), None)

    @property
    def gates_usage(self) -> bool:
        return self.metric is not None or bool(self.properties)

    @model_validator(mode="after")
    def _unique_privileges(self) -> Feature:
        codes = [p.code for p in self.privileges]
        if len(codes) != len(set(codes)):
            raise ValueError("privilege codes must be unique")
        return self
