"""How the finance pages write amounts, times and audit details (Jinja2 filters)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.invoices.money import display


def money(cents: Any, currency: str | None) -> str:
    return "—" if cents is None else display(cents, currency or "USD")


def when(value: Any) -> str:
    if value is None or value == "":
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def deduction(cents: Any, currency: str | None) -> str:
    """An amount taken off a total, with a minus sign; a dash when nothing was (never -0.00)."""
    if not cents or int(cents) == 0:
        return "—"
    return f"\u2212{money(cents, currency)}"  # a minus sign, as the template used


def changes(detail: Any) -> str:
    """An audit row's detail as "field: value" pairs, for the page's audit trail."""
    if not isinstance(detail, dict):
        return ""
    return "; ".join(f"{key}: {_short(value)}" for key, value in detail.items())


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_short(item) for item in value)
    if isinstance(value, dict):
        return "{" + changes(value) + "}"
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


FILTERS = {"money": money, "when": when, "deduction": deduction, "changes": changes}
