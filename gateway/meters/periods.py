"""The billing period of a subscription, computed exactly as Lago computes it, without asking Lago.

A usage meter is kept per subscription and per *charges* period: the window current usage shows
(``GET /customers/{id}/current_usage`` answers ``from_datetime``/``to_datetime``) and the window an
invoice bills the subscription's usage for. This module ports the date logic behind that window
from getlago/lago-api:

- ``app/services/subscriptions/dates_service.rb``: ``charges_from_datetime`` and
  ``charges_to_datetime`` (the customer's timezone shift, the clamp to ``started_at`` and to
  ``terminated_at``), ``build_date`` and ``anniversary_day_in``;
- ``app/services/subscriptions/dates/{weekly,monthly,quarterly,semiannual,yearly}_service.rb``:
  ``compute_charges_from_date``, ``compute_charges_to_date``, ``compute_to_date`` and
  ``previous_anniversary_day`` of each interval; yearly and semiannual plans with
  ``bill_charges_monthly`` take their charges dates from the monthly service;
- ``app/services/invoices/customer_usage_service.rb``: current usage builds its dates service with
  ``current_usage: true`` at the request time, so the period is the one holding that instant's day
  in the customer's timezone (``base_date`` is then the billing day itself);
- ``app/services/subscriptions/dates_service.rb`` ``charge_pay_in_advance_interval``: the period of
  an event is the current-usage period at the event's timestamp, the same computation;
- ``app/models/customer.rb`` ``applicable_timezone``: the customer's timezone, else its billing
  entity's, else UTC. The caller resolves that chain and passes the result as ``Terms.timezone``.

What is deliberately not ported, because it needs Lago's database: when the customer's timezone
changed since the last invoice, Lago starts the next charges period one second after the previous
invoice's ``charges_to_datetime`` (when the two are less than 26 hours apart) instead of at local
midnight. ``pay_in_advance`` and the subscription's ``ending_at`` play no part in the current-usage
charges period, so they are not terms here.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Interval = Literal["weekly", "monthly", "quarterly", "semiannual", "yearly"]
BillingTime = Literal["calendar", "anniversary"]

# Rails' ``end_of_day`` is 23:59:59.999999999; PostgreSQL keeps microseconds, so an event at
# 23:59:59.5 still falls in the period. Lago's API prints the bound truncated: ``23:59:59Z``.
_END_OF_DAY: Final = time(23, 59, 59, 999_999)

# Months in a period, for the intervals that count in months.
_MONTHS: Final[dict[Interval, int]] = {"monthly": 1, "quarterly": 3, "semiannual": 6, "yearly": 12}


@dataclass(frozen=True)
class Terms:
    """What Lago's charges dates depend on: the plan's interval and the subscription's dates.

    ``subscription_at`` is the anniversary anchor (on an upgrade it is inherited from the previous
    subscription); ``started_at`` is when this subscription became active (None while pending).
    ``timezone`` is the customer's applicable timezone (IANA name). ``bill_charges_monthly`` only
    counts on yearly and semiannual plans, as in Lago. ``terminated_at`` ends the last period early.
    """

    interval: Interval
    billing_time: BillingTime
    subscription_at: datetime
    started_at: datetime | None
    timezone: str = "UTC"
    bill_charges_monthly: bool = False
    terminated_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.interval not in get_args(Interval):
            raise ValueError(f"unknown interval {self.interval!r}")
        if self.billing_time not in get_args(BillingTime):
            raise ValueError(f"unknown billing_time {self.billing_time!r}")
        for name in ("subscription_at", "started_at", "terminated_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown timezone {self.timezone!r}") from error


@dataclass(frozen=True)
class Period:
    """A charges period in UTC, both bounds inclusive, as Lago stores them."""

    start: datetime
    end: datetime

    def contains(self, at: datetime) -> bool:
        """Whether an event at ``at`` (timezone-aware) falls in the period, as Lago counts it."""
        if at.utcoffset() is None:
            raise ValueError("at must be timezone-aware")
        return self.start <= at <= self.end


def current_period(terms: Terms, at: datetime) -> Period | None:
    """The charges period current usage shows at ``at`` (Lago's ``charges_(from|to)_datetime``).

    None while the subscription has not started (``started_at`` is None), as in Lago. Like Lago,
    the start is clamped to ``started_at`` (the exact instant, not its midnight) and the end to
    ``terminated_at``; before ``started_at`` both bounds collapse onto ``started_at``.
    """
    if at.utcoffset() is None:
        raise ValueError("at must be timezone-aware")
    if terms.started_at is None:
        return None
    zone = ZoneInfo(terms.timezone)
    first_day, last_day = local_days(terms, at)
    start = datetime.combine(first_day, time(), zone).astimezone(UTC)
    end = datetime.combine(last_day, _END_OF_DAY, zone).astimezone(UTC)
    started_at = terms.started_at.astimezone(UTC)
    start = max(start, started_at)
    if terms.terminated_at is not None:
        end = min(end, terms.terminated_at.astimezone(UTC))
    end = max(end, started_at)
    return Period(start=start, end=end)


def period_at(terms: Terms, at: datetime) -> Period | None:
    """The period an event stamped ``at`` is counted in, or None when no period holds it.

    The same computation as :func:`current_period` (Lago's ``charge_pay_in_advance_interval``),
    but an event before ``started_at`` or after ``terminated_at`` belongs to no period.
    """
    period = current_period(terms, at)
    if period is None or not period.contains(at):
        return None
    return period


def local_days(terms: Terms, at: datetime) -> tuple[date, date]:
    """First and last day of the charges period holding ``at``, in the customer's timezone.

    Lago's ``compute_charges_from_date`` and ``compute_charges_to_date`` with ``current_usage``,
    before the shift to UTC and the clamps to ``started_at`` and ``terminated_at``.
    """
    zone = ZoneInfo(terms.timezone)
    day = at.astimezone(zone).date()
    anchor = terms.subscription_at.astimezone(zone).date()
    interval = terms.interval
    if terms.bill_charges_monthly and interval in ("yearly", "semiannual"):
        interval = "monthly"
    if interval == "weekly":
        return _weekly(terms.billing_time, anchor, day)
    months = _MONTHS[interval]
    if terms.billing_time == "calendar":
        return _calendar_months(months, day)
    return _ANNIVERSARY[interval](anchor, day)


# --- calendar ------------------------------------------------------------------------------------


def _calendar_months(months: int, day: date) -> tuple[date, date]:
    """``beginning_of_(month|quarter|half_year|year)`` and the matching ``end_of_*``."""
    first_month = (day.month - 1) // months * months + 1
    last_month = first_month + months - 1
    return date(day.year, first_month, 1), _end_of_month(day.year, last_month)


def _weekly(billing_time: BillingTime, anchor: date, day: date) -> tuple[date, date]:
    """Weeks start on Monday (ActiveSupport's default) or on the anniversary's weekday."""
    if billing_time == "calendar":
        first = day - timedelta(days=day.weekday())
    else:
        first = day - timedelta(days=(day.weekday() - anchor.weekday()) % 7)
    return first, first + timedelta(days=6)


# --- anniversary ---------------------------------------------------------------------------------


def _monthly(anchor: date, day: date) -> tuple[date, date]:
    """``MonthlyService#previous_anniversary_day`` and ``#compute_to_date``."""
    # A month shorter than the anniversary day has its anniversary on its last day.
    anniversary = day.day if _is_last_day(day) and day.day < anchor.day else anchor.day
    if day.day < anniversary:
        year, month = (day.year - 1, 12) if day.month == 1 else (day.year, day.month - 1)
    else:
        year, month = day.year, day.month
    first = _build_date(year, month, anniversary)
    if anchor.day == 1:
        return first, _end_of_month(first.year, first.month)
    year, month = (first.year + 1, 1) if first.month == 12 else (first.year, first.month + 1)
    last = _build_date(year, month, anchor.day - 1)
    if _is_last_day(last) and anchor.day > last.day:
        last -= timedelta(days=1)
    return first, last


def _every_months(months: int) -> Callable[[date, date], tuple[date, date]]:
    """``(Quarterly|Semiannual)Service#previous_anniversary_day`` and ``#compute_to_date``."""

    def period(anchor: date, day: date) -> tuple[date, date]:
        billing_months = sorted(
            (anchor.month - 1 + k * months) % 12 + 1 for k in range(12 // months)
        )
        later = day.month not in billing_months or day.day < _anniversary_day_in(
            anchor, day.year, day.month
        )
        if day.month < billing_months[0] or (day.month == billing_months[0] and later):
            year, month = day.year - 1, billing_months[-1]
        elif later:
            year, month = day.year, max(m for m in billing_months if m < day.month)
        else:
            year, month = day.year, day.month
        first = date(year, month, _anniversary_day_in(anchor, year, month))
        if anchor.day == 1 and (anchor.month - 1) % months == 0:
            return first, _calendar_months(months, first)[1]
        next_year, next_month = divmod(first.year * 12 + first.month - 1 + months, 12)
        next_month += 1
        following = date(next_year, next_month, _anniversary_day_in(anchor, next_year, next_month))
        return first, following - timedelta(days=1)

    return period


def _yearly(anchor: date, day: date) -> tuple[date, date]:
    """``YearlyService#previous_anniversary_day`` and ``#compute_to_date``."""
    in_last_year = day.month < anchor.month or (
        day.month == anchor.month and day.day < _anniversary_day_in(anchor, day.year, anchor.month)
    )
    first = _build_date(day.year - 1 if in_last_year else day.year, anchor.month, anchor.day)
    if anchor.timetuple().tm_yday == 1:
        return first, date(first.year, 12, 31)
    last = _build_date(first.year + 1, first.month, anchor.day - 1)
    if _is_last_day(last) and anchor.day > last.day:
        last -= timedelta(days=1)
    return first, last


_ANNIVERSARY: Final[dict[Interval, Callable[[date, date], tuple[date, date]]]] = {
    "monthly": _monthly,
    "quarterly": _every_months(3),
    "semiannual": _every_months(6),
    "yearly": _yearly,
}


# --- Lago's date helpers -------------------------------------------------------------------------


def _build_date(year: int, month: int, day: int) -> date:
    """``DatesService#build_date``: day 0 is the last day of the previous month; a day past the
    end of the month is clamped to it (leap years and anniversaries after the 28th)."""
    if day == 0:
        day = 31
        month -= 1
        if month == 0:
            month = 12
            year -= 1
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _anniversary_day_in(anchor: date, year: int, month: int) -> int:
    """``DatesService#anniversary_day_in``: the anniversary day, clamped to the month."""
    return min(anchor.day, calendar.monthrange(year, month)[1])


def _end_of_month(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _is_last_day(day: date) -> bool:
    return day.day == calendar.monthrange(day.year, day.month)[1]
