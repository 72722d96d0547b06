"""One event's fields as Rails permits and casts them before ``Event`` validates them.

Copied from ``app/controllers/api/v1/events_controller.rb`` (``permit`` keeps scalars only:
arrays and objects under a scalar key are dropped, ``properties`` must be an object), the
string and decimal attribute casts of ActiveModel, and ``BigDecimal(String)`` for the
timestamp (``app/services/events/create_service.rb``).
"""

from __future__ import annotations

import re
import time
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_FLOOR,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DecimalException,
)
from typing import Any

from .errors import LagoError, error_body

# Ruby's [[:space:]] (Unicode White_Space), which ActiveSupport's ``blank?`` strips.
_WHITE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# C's isspace, which BigDecimal skips around a number.
_S = r"[ \t\n\v\f\r]"
_DIGITS = r"\d+(?:_\d+)*"
_STRICT = re.compile(
    rf"{_S}*#?(?P<sign>[+-]?)(?P<int>{_DIGITS}(?:_(?={_S}|\Z))?)?"
    rf"(?:\.(?P<frac>{_DIGITS})?)?(?:[eEdD](?P<exp>[+-]?{_DIGITS}))?{_S}*\Z",
    re.ASCII,
)
_LOOSE = re.compile(
    rf"{_S}*#?(?P<sign>[+-]?)(?P<int>{_DIGITS})?(?:\.(?P<frac>{_DIGITS})?)?"
    rf"(?:[eEdD](?P<exp>[+-]?{_DIGITS}))?",
    re.ASCII,
)
_SPECIAL = re.compile(rf"{_S}*(?:[+-]?Infinity|NaN){_S}*\Z")
# Year 1 to 9999 in milliseconds: what the emulator's formatter prints.
_MIN_MS, _MAX_MS = -62135596800000, 253402300800000
_MIN_S, _MAX_S = Decimal(_MIN_MS) / 1000, Decimal(_MAX_MS) / 1000
_WIDE = Context(prec=200, Emax=MAX_EMAX, Emin=MIN_EMIN)
_SCALE = Decimal("1e-15")
# decimal(40, 15): 25 digits before the point, else Postgres' numeric field overflow.
_PRECISE_LIMIT = Decimal("1e25")


class InternalError(LagoError):
    """500: what Lago answers when an exception escapes its controller."""

    def __init__(self) -> None:
        super().__init__(500, error_body(500))


class InvalidTimestamp(ValueError):
    """``BigDecimal()`` raised ``ArgumentError``: Lago answers ``invalid_format``."""


def is_blank(value: str) -> bool:
    """ActiveSupport's ``String#blank?``."""
    return not value or (value[0] in _WHITE_SPACE and not value.strip(_WHITE_SPACE))


def ruby_float(value: float) -> str:
    """Ruby's ``Float#to_s``: Python's shortest repr, with ``.0`` in the mantissa."""
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa and mantissa[-1].isdigit():
        mantissa += ".0"
    return f"{mantissa}{e}{exponent}"


def text(value: Any) -> str | None:
    """A permitted scalar cast by Rails' string type; ``None`` when ``permit`` drops it."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    return ruby_float(value) if isinstance(value, float) else str(value)


def _strict_decimal(raw: str) -> Decimal:
    """``BigDecimal(raw)`` (bigdecimal 4.x, strict mode)."""
    match = _STRICT.match(raw)
    if match is None or (match["int"] is None and match["frac"] is None):
        if _SPECIAL.match(raw):
            # Infinity and NaN parse, then Time.at raises FloatDomainError: a 500.
            raise InternalError
        raise InvalidTimestamp(raw)
    return _decimal_of(match)


def _decimal_of(match: re.Match[str]) -> Decimal:
    digits = (match["int"] or "0").replace("_", "")
    fraction = (match["frac"] or "0").replace("_", "")
    exponent = (match["exp"] or "0").replace("_", "")
    try:
        return _WIDE.create_decimal(f"{match['sign']}{digits}.{fraction}e{exponent}")
    except DecimalException as exc:
        # An exponent past what BigDecimal holds: Ruby raises FloatDomainError, a 500.
        raise InternalError from exc


def timestamp_ms(value: Any, received_ms: int) -> int:
    """``Time.zone.at(BigDecimal(value.to_s))`` truncated to milliseconds, as ``iso8601(3)``
    shows it; ``received_ms`` when absent, false or dropped by ``permit``."""
    if value is None or value is False or isinstance(value, dict | list):
        return received_ms
    if type(value) is int:
        seconds = Decimal(value)
    elif type(value) is float:
        # Float#to_s then BigDecimal: the same exact decimal as Python's shortest repr.
        seconds = Decimal(repr(value))
    else:
        seconds = _strict_decimal(text(value) or "")
    if not _MIN_S <= seconds < _MAX_S:
        # Postgres refuses years past 294276 with a 500; this formatter stops at 9999.
        raise InternalError
    if type(value) is int:
        return value * 1000
    return int(seconds.scaleb(3, _WIDE).to_integral_value(ROUND_FLOOR, _WIDE))


def iso_ms(millis: int) -> str:
    """Rails' ``iso8601(3)`` of a time given in unix milliseconds."""
    whole, milli = divmod(millis, 1000)
    t = time.gmtime(whole)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{milli:03d}Z"
    )


def precise_amount(value: Any) -> str | None:
    """``precise_total_amount_cents`` through Rails' decimal(40, 15) cast, as ``to_s``."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        amount = Decimal(int(value))
    elif isinstance(value, str):
        if is_blank(value):
            return None
        amount = _loose_decimal(value)
    else:
        amount = Decimal(repr(value) if isinstance(value, float) else value)
    if not amount.is_finite() or abs(amount) >= _PRECISE_LIMIT:
        raise InternalError
    amount = amount.quantize(_SCALE, ROUND_HALF_UP, _WIDE)
    shown = format(amount.normalize(_WIDE), "f")
    return shown if "." in shown else f"{shown}.0"


def _loose_decimal(raw: str) -> Decimal:
    """``String#to_d``: the leading number, 0 when there is none."""
    match = _LOOSE.match(raw)
    if match is None or (match["int"] is None and match["frac"] is None):
        return Decimal(0)
    return _decimal_of(match)
