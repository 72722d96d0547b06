"""Wallets' recurring transaction rules applied on the clock: the jobs a test (or
``POST /_emulator/clock/recurring_transaction_rules``) runs at the emulator's ``now``.

Follows lago-api's ``Clock::TerminateRecurringTransactionRulesJob``,
``app/services/wallets/create_interval_wallet_transactions_service.rb`` (hourly
``Clock::CreateIntervalWalletTransactionsJob``),
``app/services/wallets/threshold_top_up_service.rb`` and the credit computations of
``app/models/recurring_transaction_rule.rb``.
"""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .clock import parse_iso
from .recurring_rule_storage import active_scope, terminate
from .recurring_rule_validation import INTERVALS
from .state import EmulatorState, Record


def terminate_expired(state: EmulatorState) -> list[str]:
    """``Clock::TerminateRecurringTransactionRulesJob`` (hourly): active rules past their
    ``expiration_at`` are terminated. Returns their ids."""
    now = state.now()
    ended = []
    for wallet in state.wallets.values():
        for rule in wallet.get("recurring_transaction_rules") or []:
            expires = rule["expiration_at"]
            if rule["status"] == "active" and expires and parse_iso(expires) <= now:
                terminate(state, rule)
                ended.append(rule["lago_id"])
    return ended


def _zone(state: EmulatorState, wallet: Record) -> ZoneInfo:
    customer = state.customers.get(wallet["external_customer_id"]) or {}
    return ZoneInfo(customer.get("applicable_timezone") or "UTC")


def _last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _billing_day(started: date, today: date) -> bool:
    """Today is the anniversary day of the month (every day up to the 31st on a month's last)."""
    if today.day == _last_day(today):
        return started.day >= today.day
    return started.day == today.day


def _due_today(interval: str, started: date, today: date) -> bool:
    """``CreateIntervalWalletTransactionsService``'s ``*_anniversary`` conditions."""
    if interval == "weekly":
        return started.isoweekday() == today.isoweekday()
    if interval == "monthly":
        return _billing_day(started, today)
    if interval in ("quarterly", "semiannual"):
        every = 3 if interval == "quarterly" else 6
        if started.month % every == 0:
            month_ok = today.month % every == 0
        else:
            month_ok = any((started.month + k) % 12 == today.month for k in range(0, 12, every))
        return month_ok and _billing_day(started, today)
    # yearly: 29 February falls on the 28th in a year without one.
    if started.month != today.month:
        return False
    if today.month == 2 and today.day == 28 and _last_day(today) == 28:
        return started.day in (28, 29)
    return started.day == today.day


def _applied_today(state: EmulatorState, wallet: Record, today: date, zone: ZoneInfo) -> bool:
    return any(
        t["lago_wallet_id"] == wallet["lago_id"]
        and t.get("source") == "interval"
        and t["transaction_type"] == "inbound"
        and parse_iso(t["created_at"]).astimezone(zone).date() == today
        for t in state.wallet_transactions.values()
    )


def _ongoing_credits(state: EmulatorState, wallet: Record) -> Decimal:
    from .wallets import serialize

    return Decimal(serialize(state, wallet)["credits_ongoing_balance"])


def _target_gap(rule: Record, ongoing: Decimal) -> Decimal:
    target = Decimal(rule["target_ongoing_balance"] or 0)
    return Decimal(0) if ongoing >= target else target - ongoing


def paid_credits_of(rule: Record, ongoing: Decimal, pending: Decimal = Decimal(0)) -> Decimal:
    """``RecurringTransactionRule#compute_paid_credits`` (no paid top-up limits here)."""
    paid = Decimal(rule["paid_credits"])
    if rule["method"] == "target":
        return Decimal(0) if rule["grants_target_top_up"] else _target_gap(rule, ongoing)
    if rule["trigger"] == "threshold":
        if paid == 0:
            return paid
        gap = Decimal(rule["threshold_credits"]) - ongoing - Decimal(rule["granted_credits"])
        gap -= pending
        return paid if gap < paid else paid * ((gap / paid).to_integral_value("ROUND_FLOOR") + 1)
    return paid


def granted_credits_of(rule: Record, ongoing: Decimal) -> Decimal:
    """``RecurringTransactionRule#compute_granted_credits``."""
    if rule["method"] == "target":
        return _target_gap(rule, ongoing) if rule["grants_target_top_up"] else Decimal(0)
    return Decimal(rule["granted_credits"])


def _apply(state: EmulatorState, wallet: Record, rule: Record, paid: Decimal,
           granted: Decimal, source: str) -> list[Record]:  # fmt: skip
    """``WalletTransactions::CreateJob`` with the rule's parameters, run at once."""
    from .wallets import top_up

    params = {"paid_credits": str(paid), "granted_credits": str(granted),
              "name": rule["transaction_name"]}  # fmt: skip
    given = {
        "source": source,
        "metadata": rule["transaction_metadata"] or [],
        "priority": 50,
        "invoice_requires_successful_payment": rule["invoice_requires_successful_payment"],
        "purchase_order_number": (
            rule["purchase_order_number"] or wallet.get("purchase_order_number")
        ),
    }
    return top_up(state, wallet, params, given)


def create_interval_transactions(state: EmulatorState) -> list[Record]:
    """``Clock::CreateIntervalWalletTransactionsJob`` (hourly, at :55): each active interval
    rule of an active wallet whose anniversary (from ``started_at``, else the wallet's
    creation, in the customer's time zone) is today tops the wallet up, unless the wallet was
    created today or already had an interval top-up today. Returns the transactions made."""
    now = state.now()
    made: list[Record] = []
    for wallet in list(state.wallets.values()):
        if wallet["status"] != "active":
            continue
        zone = _zone(state, wallet)
        today = now.astimezone(zone).date()
        if parse_iso(wallet["created_at"]).astimezone(zone).date() == today:
            continue
        if _applied_today(state, wallet, today, zone):
            continue
        for rule in list(wallet.get("recurring_transaction_rules") or []):
            if rule["trigger"] != "interval" or rule["interval"] not in INTERVALS:
                continue
            if not active_scope(state, rule):
                continue
            start = parse_iso(rule["started_at"] or wallet["created_at"])
            anniversary = start.astimezone(zone).date()
            if start > now or not _due_today(rule["interval"], anniversary, today):
                continue
            ongoing = _ongoing_credits(state, wallet)
            paid, granted = paid_credits_of(rule, ongoing), granted_credits_of(rule, ongoing)
            if rule["method"] == "target" and paid == 0 and granted == 0:
                continue
            made += _apply(state, wallet, rule, paid, granted, "interval")
    return made


def threshold_top_ups(state: EmulatorState) -> list[Record]:
    """``Wallets::ThresholdTopUpService`` for every active wallet (Lago runs it when it
    refreshes a wallet's ongoing balance): a wallet at or below its active threshold rule's
    ``threshold_credits``, pending top-ups included, is topped up. Returns the transactions."""
    made: list[Record] = []
    for wallet in list(state.wallets.values()):
        if wallet["status"] != "active":
            continue
        rule = next(
            (
                r
                for r in wallet.get("recurring_transaction_rules") or []
                if r["trigger"] == "threshold" and active_scope(state, r)
            ),
            None,
        )
        if rule is None:
            continue
        ongoing = _ongoing_credits(state, wallet)
        threshold = Decimal(rule["threshold_credits"])
        pending = sum(
            (
                Decimal(t["credit_amount"])
                for t in state.wallet_transactions.values()
                if t["lago_wallet_id"] == wallet["lago_id"] and t["status"] == "pending"
            ),
            Decimal(0),
        )
        if ongoing > threshold or pending + ongoing > threshold:
            continue
        paid = paid_credits_of(rule, ongoing, pending)
        made += _apply(state, wallet, rule, paid, granted_credits_of(rule, ongoing), "threshold")
    return made


def run_clock(state: EmulatorState) -> dict[str, Any]:
    """The rules' clock jobs at ``state.now()``: expired rules terminated (Lago at :50),
    interval top-ups (at :55), then threshold top-ups (Lago's wallet refresh)."""
    terminated = terminate_expired(state)
    interval = create_interval_transactions(state)
    return {
        "terminated_rule_ids": terminated,
        "wallet_transactions": interval + threshold_top_ups(state),
    }
