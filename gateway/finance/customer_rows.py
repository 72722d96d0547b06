"""Rows of the customer page built from what was read: meters against allowances, wallet
movements and audit lines, ready to show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.audit.models import AuditEntry
from gateway.finance.formatting import changes
from gateway.invoices.money import display, exponent

MINUS = "\u2212"  # the minus sign
DETAIL_LIMIT = 240


@dataclass(frozen=True)
class Meter:
    """One metric's use this period against the plan's allowance."""

    metric: str
    units: float
    held: float
    included: float | None
    unlimited: bool
    percent: int | None  # of the allowance used, for the bar (None: nothing to measure)
    over: bool
    beyond: str | None
    entitled: bool
    can_generate: bool | None
    breakdown: dict[str, Any]


@dataclass(frozen=True)
class Balance:
    """One subscription's balance answer, ready to show."""

    subscription: str | None
    status: str | None
    plan: str | None
    period: str | None
    meters: list[Meter]
    wallet: dict[str, Any] | None
    features: list[tuple[str, str]]


@dataclass
class UsageView:
    balances: list[Balance] = field(default_factory=list)
    failed: bool = False


def meter(metric: str, usage: dict[str, Any]) -> Meter:
    """A metric of the balance answer's ``usage``, with the share of its allowance used."""
    units, held = float(usage.get("units") or 0), float(usage.get("held") or 0)
    included = usage.get("included")
    has_allowance = usage.get("can_generate") is not None
    percent = None
    if included:
        percent = min(100, round(100 * (units + held) / float(included)))
    return Meter(
        metric=metric,
        units=units,
        held=held,
        included=None if included is None else float(included),
        unlimited=has_allowance and included is None,
        percent=percent,
        over=included is not None and units + held > float(included),
        beyond=usage.get("beyond_included"),
        entitled=bool(usage.get("entitled", True)),
        can_generate=usage.get("can_generate"),
        breakdown=dict(usage.get("breakdown") or {}),
    )


def _features(found: dict[str, Any]) -> list[tuple[str, str]]:
    shown = []
    for code, values in sorted(found.items()):
        pairs = ", ".join(f"{k} {v}" for k, v in sorted((values or {}).items()))
        shown.append((code, pairs))
    return shown


def balance(answer: dict[str, Any]) -> Balance:
    """The ``balance`` object of the balance endpoint, for the page."""
    subscription = answer.get("subscription") or {}
    plan = answer.get("plan") or {}
    period = answer.get("period")
    return Balance(
        subscription=subscription.get("external_id"),
        status=subscription.get("status"),
        plan=plan.get("name") or plan.get("code"),
        period=None if not period else f"{period['from'][:10]} \u2013 {period['to'][:10]}",
        meters=[meter(name, usage) for name, usage in (answer.get("usage") or {}).items()],
        wallet=answer.get("wallet"),
        features=_features(answer.get("features") or {}),
    )


def usage_view(answers: list[dict[str, Any]]) -> UsageView:
    """One balance per subscription asked about."""
    return UsageView([balance(answer) for answer in answers])


def units(value: float) -> str:
    """``3.0`` → ``3``; ``2.5`` → ``2.5``."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


def money_of(major: Any, currency: str) -> str:
    """A wallet amount Lago gives in major units (``"9.99"``) shown as money."""
    try:
        cents = int(Decimal(str(major or 0)).scaleb(exponent(currency)))
    except InvalidOperation:
        return "—"
    return display(cents, currency)


def movement(transaction: dict[str, Any], currency: str) -> dict[str, Any]:
    """A wallet transaction with its signed credits and money shown."""
    credits = str(transaction.get("credit_amount") or "0")
    outbound = transaction.get("transaction_type") == "outbound"
    nonzero = Decimal(credits or "0") != 0
    sign = (MINUS if outbound else "+") if nonzero else ""
    amount = money_of(transaction.get("amount"), currency)
    return {
        **transaction,
        "shown_credits": f"{sign}{credits}",
        "shown_amount": f"{MINUS}{amount}" if outbound and nonzero else amount,
    }


def newest_first(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Invoices by issuing date, newest first (Lago's order kept within a day)."""
    return sorted(found, key=lambda i: str(i.get("issuing_date") or ""), reverse=True)


@dataclass(frozen=True)
class AuditLine:
    at: datetime
    actor: str
    action: str
    outcome: str
    status: int | None
    change: str


def describe(entry: AuditEntry, customer: str) -> str:
    """What an audit row says changed: its detail, and its target when not the customer."""
    parts = []
    if entry.target and entry.target != customer:
        parts.append(f"on {entry.target}")
    if entry.detail:
        parts.append(changes(entry.detail))
    text = "; ".join(parts) or "—"
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"


def audit_line(entry: AuditEntry, customer: str) -> AuditLine:
    """One line of the customer's audit trail."""
    return AuditLine(
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        outcome=entry.outcome,
        status=entry.status,
        change=describe(entry, customer),
    )
