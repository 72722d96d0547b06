"""Amounts in minor units (Lago's ``*_amount_cents``) shown in major units, per currency."""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 exponents that are not 2 (the same lists Stripe and Lago use).
_ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
_THREE_DECIMAL = frozenset(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"])


def exponent(currency: str) -> int:
    """Digits after the decimal point for ``currency``."""
    code = currency.upper()
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2


def to_decimal(cents: int | str | None, currency: str) -> Decimal:
    """``1234`` USD → ``Decimal("12.34")``; exact, never a float."""
    return Decimal(int(cents or 0)).scaleb(-exponent(currency))


def plain(cents: int | str | None, currency: str) -> str:
    """``1234`` USD → ``"12.34"`` (for CSV: no grouping, no symbol)."""
    return f"{to_decimal(cents, currency):.{exponent(currency)}f}"


def display(cents: int | str | None, currency: str) -> str:
    """``123456`` USD → ``"1,234.56 USD"`` (for people)."""
    return f"{to_decimal(cents, currency):,.{exponent(currency)}f} {currency.upper()}"
