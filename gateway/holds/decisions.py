"""What a hold's changes decide, whichever path stores them (``service`` through SQLAlchemy,
``pipelined`` on PostgreSQL): the expiry asked for, the billing period, a resend, a new
hold's row, whether a hold is still open, what a capture counts."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.catalog import accounting
from gateway.errors import Conflict, ValidationFailed
from gateway.holds.cover import Cover
from gateway.holds.messages import shape
from gateway.holds.models import EXPIRED, HELD
from gateway.meters.metering import MeterRule, event_value
from gateway.meters.service import Terms
from gateway.usage.parsing import ParsedEvent

DEFAULT_EXPIRES_IN = 600
MAX_EXPIRES_IN = 24 * 3600


def expires_in(value: Any) -> int:
    """``expires_in`` as asked (seconds), or the default."""
    if value is None:
        return DEFAULT_EXPIRES_IN
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(details={"expires_in": ["invalid_type"]})
    if not 1 <= value <= MAX_EXPIRES_IN:
        raise ValidationFailed(details={"expires_in": ["value_is_out_of_range"]})
    return value


def period(terms: Terms, now: float) -> tuple[float, float]:
    """The billing period a hold made now reserves in (422 before the subscription starts)."""
    found = terms.period_of(now)
    if found is None:
        raise ValidationFailed(details={"external_subscription_id": ["not_started"]})
    return found


def same(found: Mapping[str, Any], event: ParsedEvent) -> dict[str, Any]:
    """The hold already made for the event's key, when the resend is the same request."""
    if found["fingerprint"] != event.fingerprint():
        raise ValidationFailed(details={"transaction_id": ["value_already_exist"]})
    return shape(found)


def new_row(
    terms: Terms,
    event: ParsedEvent,
    period: tuple[float, float],
    cover: Cover,
    now: float,
    expires_in: int,
    actor: str,
) -> dict[str, Any]:
    """A new hold's row."""
    return {
        "id": "hold_" + secrets.token_hex(12),
        "external_subscription_id": event.external_subscription_id,
        "external_customer_id": terms.customer,
        "transaction_id": event.transaction_id,
        "code": event.code,
        "properties": orjson.dumps(event.properties or {}).decode(),
        "fingerprint": event.fingerprint(),
        "period_start": period[0],
        "units": cover.units,
        "allowance_units": cover.allowance_units,
        "tokens": accounting.text(cover.tokens),
        "paid_from": cover.paid_from,
        "status": HELD,
        "created_at": now,
        "expires_at": now + expires_in,
        "settled_at": None,
        "captured_units": None,
        "actor": actor,
    }


def check_open(row: Mapping[str, Any], now: float) -> None:
    """409 ``hold_not_held`` unless the hold is held and not past its expiry."""
    if row["status"] != HELD or row["expires_at"] <= now:
        status = row["status"] if row["status"] != HELD else EXPIRED
        raise Conflict(f"the hold is {status}", code="hold_not_held", details={"status": status})


def captured(rule: MeterRule, event: ParsedEvent) -> tuple[float, str]:
    """The units a captured event counts and its properties (JSON)."""
    units, _ = event_value(rule, event.properties)
    return units, orjson.dumps(event.properties or {}).decode()
