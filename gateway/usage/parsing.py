"""Reading usage events as producers send them (Lago's shape, SDK nulls included).

Errors use Lago's keys and codes: ``{"timestamp": ["invalid_format"]}``; batches key them by
index. Beyond the shape, an event is refused when Lago could not store or bill it
(docs/ingest.md lists every rule):

- a NUL character (``\\u0000``) in an id, the code, a property key or value: PostgreSQL's
  ``text`` and ``jsonb`` cannot hold it (``value_is_invalid``);
- ``transaction_id``, ``code`` or the subscription (``external_subscription_id``, else
  ``external_customer_id``) absent or blank: ``value_is_mandatory``, Lago's word for Rails'
  ``blank``. A blank id (empty, or only whitespace) counts as absent;
- a timestamp before ``EARLIEST_TIMESTAMP`` (2000-01-01T00:00:00Z) or more than
  ``EventRules.max_future_seconds`` after it was received (a day by default, setting
  ``GATEWAY_EVENT_MAX_FUTURE_SECONDS``): ``value_is_out_of_range``; a negative or unreadable
  one: ``invalid_format``. Milliseconds sent as seconds land thousands of years ahead;
- for a metric of the catalog that aggregates a property (``EventRules.metrics``): the
  property missing (``value_is_mandatory``), not a number where sum, max, latest and
  weighted sum add or compare numbers (``value_is_not_valid_number``: a finite JSON number,
  or a string in Lago's own numeric shape ``-?[0-9]+(.[0-9]+)?``), below zero unless the
  metric says ``allow_negative`` (``value_is_out_of_range``).

The size of the whole event is checked by ``UsageIngest`` on the payload Lago receives.
Field names, which are required, and the limits come from the event's contract,
``schemas.EventIn``, read once at import: nothing of pydantic runs per event.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from gateway.catalog.schemas import NUMERIC_AGGREGATIONS, Catalog
from gateway.usage.schemas import (
    DEFAULT_MAX_FUTURE_SECONDS,
    EARLIEST_TIMESTAMP,
    EventIn,
    Identifier,
)

_CONTRACT = EventIn.model_fields
# The ids of the contract, with their length limits; those the contract requires.
ID_LIMITS = {
    name: mark.max_length
    for name, field in _CONTRACT.items()
    for mark in field.metadata
    if isinstance(mark, Identifier)
}
REQUIRED = tuple(name for name, field in _CONTRACT.items() if field.is_required())
(MAX_ID_LENGTH,) = set(ID_LIMITS.values())  # one limit for every id, checked inline
_SCALARS = (str, int, float)
# Lago's test for a numeric property (its events' post-validation); ASCII digits only.
_NUMERIC_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
Errors = dict[str, list[str]]


class MetricRule(NamedTuple):
    """What an event of one metric must carry: ``field_name`` present, numeric if
    ``numeric``, and not below zero unless ``allow_negative``."""

    field_name: str
    numeric: bool
    allow_negative: bool = False


class EventRules(NamedTuple):
    """Checks beyond the shape: metric rules by code, and how far ahead a timestamp may be."""

    metrics: Mapping[str, MetricRule] = {}
    max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS


NO_RULES = EventRules()


def metric_rules(catalog: Catalog | None) -> dict[str, MetricRule]:
    """What events of each metric must carry: the property it aggregates (every aggregation
    but count; none when an expression computes it), a number where it adds or compares."""
    rules: dict[str, MetricRule] = {}
    for metric in catalog.billable_metrics if catalog is not None else []:
        if metric.field_name and metric.aggregation_type != "count_agg" and not metric.expression:
            numeric = metric.aggregation_type in NUMERIC_AGGREGATIONS
            rules[metric.code] = MetricRule(metric.field_name, numeric, metric.allow_negative)
    return rules


class ParsedEvent(NamedTuple):
    """A valid event: ``timestamp`` is already the value Lago will receive.

    A named tuple, not a frozen dataclass: one is built per event on the hot path.
    """

    transaction_id: str
    code: str
    external_subscription_id: str | None
    external_customer_id: str | None
    timestamp: int | str
    timestamp_given: bool
    properties: dict[str, str | int | float] | None
    precise_total_amount_cents: str | None

    def with_subscription(self, external_subscription_id: str) -> ParsedEvent:
        return self._replace(external_subscription_id=external_subscription_id)

    def payload(self) -> str:
        """The exact JSON Lago receives on every attempt (no nulls: spec-valid)."""
        return orjson.dumps(self.body()).decode()

    def payload_bytes(self) -> bytes:
        """``payload()`` encoded (UTF-8), as it is measured against the size limit."""
        return orjson.dumps(self.body())

    def body(self) -> dict[str, Any]:
        """The event as Lago receives it, before serialisation."""
        body: dict[str, Any] = {
            "transaction_id": self.transaction_id,
            "external_subscription_id": self.external_subscription_id,
            "code": self.code,
            "timestamp": self.timestamp,
        }
        if self.properties is not None:
            body["properties"] = self.properties
        if self.precise_total_amount_cents is not None:
            body["precise_total_amount_cents"] = self.precise_total_amount_cents
        return body

    def fingerprint(self) -> str:
        """Identity of the event as sent: a stamped (absent) timestamp is not part of it."""
        content = [
            self.external_subscription_id,
            self.transaction_id,
            self.code,
            self.timestamp if self.timestamp_given else None,
            self.properties,
            self.precise_total_amount_cents,
        ]
        data = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(data, digest_size=16).hexdigest()


def _format_seconds(value: float) -> int | str:
    if value == int(value):
        return int(value)
    # Lago keeps milliseconds; the spec types a timestamp as integer or string, not float.
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _seconds(value: Any) -> int | float | None:
    """Unix seconds from a number, a numeric string or RFC 3339 text; None if unreadable,
    or a negative number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number: int | float = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return _rfc3339(text)  # a date before 1970 is readable, and out of range
    else:
        return None
    if (isinstance(number, float) and not math.isfinite(number)) or number < 0:
        return None
    return number


def _rfc3339(text: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        seconds = parsed.timestamp()
    except (ValueError, OverflowError):
        return None
    if parsed.tzinfo is None or "T" not in text.upper():
        return None
    return round(seconds, 6)


def _timestamp(value: Any, latest: float, errors: Errors) -> int | str | None:
    """A given timestamp as Lago receives it, if readable and within the accepted range."""
    seconds = _seconds(value)
    if seconds is None:
        errors["timestamp"] = ["invalid_format"]
        return None
    if not EARLIEST_TIMESTAMP <= seconds <= latest:
        errors["timestamp"] = ["value_is_out_of_range"]
        return None
    return seconds if isinstance(seconds, int) else _format_seconds(seconds)


def _identifier(raw: dict[str, Any], name: str, errors: Errors) -> str | None:
    """The id as given; None when absent or blank (the caller decides if that is an error)."""
    value = raw.get(name)
    if (
        type(value) is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and "\x00" not in value
        and not value.isspace()
    ):
        return value  # the common case, first: this runs for every event
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        errors[name] = ["invalid_type"]
        return None
    if not value.strip():
        return None
    if "\x00" in value:
        errors[name] = ["value_is_invalid"]
        return None
    if len(value) > MAX_ID_LENGTH:
        errors[name] = ["value_is_too_long"]
        return None
    return value


def _properties(raw: Any, errors: Errors) -> dict[str, str | int | float] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors["properties"] = ["invalid_type"]
        return None
    for key, value in raw.items():
        kind = type(value)
        if kind is str:
            if "\x00" in value:
                errors[f"properties.{key}"] = ["value_is_invalid"]
        elif kind is not int and not (kind is float and math.isfinite(value)):
            # Exact types above; subclasses, bool (an int subclass), NaN and inf come here.
            problem = _property_problem(value)
            if problem:
                errors[f"properties.{key}"] = [problem]
        if "\x00" in key:
            errors["properties"] = ["value_is_invalid"]  # a key with NUL cannot be named back
    return raw


def _property_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return "value_is_invalid" if "\x00" in value else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "invalid_value"
    return None


def _aggregated(rule: MetricRule, properties: dict[str, Any] | None, errors: Errors) -> None:
    """The property the metric aggregates: present, and a number where it must be one."""
    value = None if properties is None else properties.get(rule.field_name)
    kind = type(value)
    if isinstance(value, int | float) and value >= 0:
        return  # the common case, first (NaN and inf are already refused as properties)
    name = f"properties.{rule.field_name}"
    if name in errors:
        return
    if value is None:
        errors[name] = ["value_is_mandatory"]
        return
    if not rule.numeric:
        return
    if kind is int or kind is float:
        number: float = value
    elif kind is str and _NUMERIC_TEXT.fullmatch(value):
        number = float(value)
    else:
        errors[name] = ["value_is_not_valid_number"]
        return
    if number < 0 and not rule.allow_negative:
        errors[name] = ["value_is_out_of_range"]


def _amount(raw: Any, errors: Errors) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, float) and math.isfinite(raw):
        return str(raw)
    if isinstance(raw, str):
        try:
            number = float(raw)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return raw
    errors["precise_total_amount_cents"] = ["invalid_value"]
    return None


def parse_event(raw: Any, received_at: float, rules: EventRules = NO_RULES) -> ParsedEvent | Errors:
    """One event, or Lago-style errors naming each bad field."""
    if not isinstance(raw, dict):
        return {"event": ["invalid_type"]}
    errors: Errors = {}
    transaction_id = _identifier(raw, "transaction_id", errors)
    code = _identifier(raw, "code", errors)
    subscription = _identifier(raw, "external_subscription_id", errors)
    customer = _identifier(raw, "external_customer_id", errors)
    for name, value in (("transaction_id", transaction_id), ("code", code)):  # REQUIRED
        if value is None and name not in errors:
            errors[name] = ["value_is_mandatory"]
    if (
        subscription is None
        and customer is None
        and not errors.keys() & {"external_subscription_id", "external_customer_id"}
    ):
        errors["external_subscription_id"] = ["value_is_mandatory"]
    metrics, max_future_seconds = rules
    raw_timestamp = raw.get("timestamp")
    given = raw_timestamp is not None
    latest = received_at + max_future_seconds
    if type(raw_timestamp) is int and EARLIEST_TIMESTAMP <= raw_timestamp <= latest:
        timestamp: int | str | None = raw_timestamp
    elif given:
        timestamp = _timestamp(raw_timestamp, latest, errors)
    else:
        timestamp = _format_seconds(round(received_at, 3))
    properties = _properties(raw.get("properties"), errors)
    rule = metrics.get(code) if metrics and code is not None else None
    if rule is not None and "properties" not in errors:
        _aggregated(rule, properties, errors)
    amount = _amount(raw.get("precise_total_amount_cents"), errors)
    if errors:
        return errors
    assert transaction_id is not None and code is not None and timestamp is not None
    return ParsedEvent(
        transaction_id, code, subscription, customer, timestamp, given, properties, amount
    )
