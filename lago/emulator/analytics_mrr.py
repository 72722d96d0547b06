"""MRR as ``app/models/analytics/mrr.rb`` computes it.

Subscription fees (``fee_type = 2``, ``item.type == "subscription"``) of finalized invoices
that are not self-billed and have no lost dispute; each fee is worth ``amount_cents -
precise_coupons_amount_cents + taxes_amount_cents`` and is placed by its plan's interval
(the plan as it is now, through the fee's subscription):

- monthly: the issuing month; weekly: per month and currency, the mean * 4.33;
- quarterly, semiannual, yearly: spread over ``CEIL(billed_months)`` months, where
  ``billed_months`` is the fee's period (``to_date - from_date``: days + hours/24 +
  minutes/1440) / 30.44. In arrears, backwards from the issuing month, an even share each and
  the remainder in the last; in advance, forwards, the first month prorated by the days left
  in it, the last taking ``amount - share * (FLOOR(billed_months) - 1 + ratio)``, and, for
  semiannual plans only, the three months before the last computed the same way with 2, 3
  and 4 (the CASE of ``semiannual_advance``, copied as it is, though its months then add up
  to more than the fee).

Advance shares are ``double precision`` in Postgres, arrears ``numeric``; both are summed as
``numeric`` and rendered as ``BigDecimal`` strings (``"770.0"``). A month without MRR has a
row of nulls unless a currency is asked for.
"""

from __future__ import annotations

import calendar
import math
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

from .analytics_window import (
    Window,
    add_months,
    big_decimal,
    counted,
    month_label,
    month_of,
    parse_day,
)
from .clock import parse_iso
from .state import EmulatorState, Record

_DAYS_PER_MONTH = Decimal("30.44")
_WEEKS_PER_MONTH = Decimal("4.33")
_SPREAD = ("quarterly", "semiannual", "yearly")

Share = tuple[str, Decimal, str]  # (month, amount, currency)


def _billed_months(fee: Record) -> Decimal | None:
    """``billed_months`` from the fee's period; ``None`` (no rows) when it has none."""
    if not fee.get("from_date") or not fee.get("to_date"):
        return None
    span = parse_iso(fee["to_date"]) - parse_iso(fee["from_date"])
    hours, rest = divmod(span.seconds, 3600)
    days = Decimal(span.days) + Decimal(hours) / 24 + Decimal(rest // 60) / 1440
    return days / _DAYS_PER_MONTH


def _float8(value: float) -> Decimal:
    """A ``double precision`` cast to ``numeric`` (15 significant digits)."""
    return Decimal(f"{value:.15g}")


def _advance(amount: Decimal, billed: Decimal, issued: str, semiannual: bool) -> Iterator[Decimal]:
    """The CASE of ``{quarterly,semiannual,yearly}_advance``, month by month."""
    day = parse_day(issued)
    length = calendar.monthrange(day.year, day.month)[1]
    ratio = (length - day.day + 1) / length
    share = float(amount / billed)
    count, whole = math.ceil(billed), math.floor(billed)
    tails = (1, 2, 3, 4) if semiannual else (1,)
    for index in range(count):
        if index == 0:
            yield _float8(share * ratio)
        elif count - index in tails:
            yield _float8(float(amount) - share * (whole - (count - index) + ratio))
        else:
            yield _float8(share)


def _arrears(amount: Decimal, billed: Decimal) -> Iterator[Decimal]:
    """The CASE of ``{quarterly,semiannual,yearly}_arrears``, month by month backwards."""
    count = math.ceil(billed)
    share = amount / billed
    for index in range(count):
        yield share if index < count - 1 else amount - share * (count - 1)


def _spread(fee: Record, amount: Decimal, issued: str, plan: Record) -> Iterator[Share]:
    billed = _billed_months(fee)
    if billed is None or math.ceil(billed) < 1:
        return
    month, currency = month_of(issued), fee["amount_currency"]
    if plan.get("pay_in_advance"):
        shares = _advance(amount, billed, issued, plan["interval"] == "semiannual")
        for index, value in enumerate(shares):
            yield add_months(month, index), value, currency
    else:
        for index, value in enumerate(_arrears(amount, billed)):
            yield add_months(month, -index), value, currency


def _subscription_fees(state: EmulatorState, scope: Window) -> Iterator[tuple[Record, str, Record]]:
    """``invoice_details``: (fee, issuing date, plan) of each subscription fee counted."""
    for invoice in state.invoices.values():
        if not (counted(invoice) and scope.keeps(state, invoice)):
            continue
        for fee in invoice["fees"]:
            if (fee.get("item") or {}).get("type") != "subscription":
                continue
            subscription = state.subscriptions.get(fee.get("lago_subscription_id") or "")
            plan = state.plans.get(subscription["plan_code"]) if subscription else None
            if plan is not None:
                yield fee, invoice["issuing_date"], plan


def _shares(state: EmulatorState, scope: Window) -> list[Share]:
    """``consolidated_mrr``: every (month, amount, currency) share."""
    shares: list[Share] = []
    weekly: defaultdict[tuple[str, str], list[Decimal]] = defaultdict(list)
    for fee, issued, plan in _subscription_fees(state, scope):
        coupons = Decimal(str(fee.get("precise_coupons_amount_cents") or 0))
        taxes = Decimal(int(fee.get("taxes_amount_cents") or 0))
        amount = Decimal(int(fee["amount_cents"])) - coupons + taxes
        if plan["interval"] == "monthly":
            shares.append((month_of(issued), amount, fee["amount_currency"]))
        elif plan["interval"] == "weekly":
            weekly[(month_of(issued), fee["amount_currency"])].append(amount)
        elif plan["interval"] in _SPREAD:
            shares.extend(_spread(fee, amount, issued, plan))
    for (month, currency), amounts in weekly.items():
        shares.append((month, sum(amounts, Decimal(0)) / len(amounts) * _WEEKS_PER_MONTH, currency))
    return shares


def mrrs(state: EmulatorState, scope: Window) -> list[Record]:
    """Analytics::Mrr: one row per month of the window and currency, oldest first."""
    totals: defaultdict[str, dict[str, Decimal]] = defaultdict(dict)
    for month, amount, currency in _shares(state, scope):
        totals[month][currency] = totals[month].get(currency, Decimal(0)) + amount
    rows: list[Record] = []
    for month in scope.months():
        found: dict[str | None, Decimal | None] = dict(sorted(totals[month].items()))
        if not found:
            found = {None: None}
        rows.extend(
            {
                "month": month_label(month),
                "amount_cents": None if amount is None else big_decimal(amount),
                "currency": currency,
            }
            for currency, amount in found.items()
            if scope.currency is None or currency == scope.currency
        )
    return rows
