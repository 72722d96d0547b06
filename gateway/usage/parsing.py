"""Reading usage events as producers send them (Lago's shape, SDK nulls included).

Errors use Lago's keys and codes: ``{"timestamp": ["invalid_format"]}``; batches key them by index.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any, NamedTuple

import orjson

MAX_ID_LENGTH = 255
_SCALARS = (str, int, float)
Errors = dict[str, list[str]]


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


def normalise_timestamp(value: Any) -> int | str | None:
    """Unix seconds (number or numeric string) or RFC 3339 → what Lago receives; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return _format_seconds(value) if math.isfinite(value) and value >= 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return _format_seconds(number) if math.isfinite(number) and number >= 0 else None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None or "T" not in text.upper():
        return None
    return _format_seconds(round(parsed.timestamp(), 6))


def _identifier(raw: dict[str, Any], name: str, errors: Errors) -> str | None:
    value = raw.get(name)
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:
        return value  # the common case, first: this runs for every event
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        errors[name] = ["invalid_type"]
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
        if kind is str or kind is int or (kind is float and math.isfinite(value)):
            continue  # exact types: bool (an int subclass) and NaN/inf fall through
        ok = isinstance(value, _SCALARS) and not isinstance(value, bool)
        if not ok or (isinstance(value, float) and not math.isfinite(value)):
            errors[f"properties.{key}"] = ["invalid_value"]
    return raw


def _amount(raw: Any, errors: Errors) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, str):
        try:
            float(raw)
        except ValueError:
            pass
        else:
            return raw
    errors["precise_total_amount_cents"] = ["invalid_value"]
    return None


def parse_event(raw: Any, received_at: float) -> ParsedEvent | Errors:
    """One event, or Lago-style errors naming each bad field."""
    if not isinstance(raw, dict):
        return {"event": ["invalid_type"]}
    errors: Errors = {}
    transaction_id = _identifier(raw, "transaction_id", errors)
    code = _identifier(raw, "code", errors)
    subscription = _identifier(raw, "external_subscription_id", errors)
    customer = _identifier(raw, "external_customer_id", errors)
    for name, value in (("transaction_id", transaction_id), ("code", code)):
        if value is None and name not in errors:
            errors[name] = ["value_is_missing"]
    if (
        subscription is None
        and customer is None
        and not errors.keys()
        & {
            "external_subscription_id",
            "external_customer_id",
        }
    ):
        errors["external_subscription_id"] = ["value_is_missing"]
    raw_timestamp = raw.get("timestamp")
    given = raw_timestamp is not None
    if type(raw_timestamp) is int and raw_timestamp >= 0:
        timestamp: int | str | None = raw_timestamp
    elif given:
        timestamp = normalise_timestamp(raw_timestamp)
    else:
        timestamp = _format_seconds(round(received_at, 3))
    if timestamp is None:
        errors["timestamp"] = ["invalid_format"]
    properties = _properties(raw.get("properties"), errors)
    amount = _amount(raw.get("precise_total_amount_cents"), errors)
    if errors:
        return errors
    assert transaction_id is not None and code is not None and timestamp is not None
    return ParsedEvent(
        transaction_id, code, subscription, customer, timestamp, given, properties, amount
    )
