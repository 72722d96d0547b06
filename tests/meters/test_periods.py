"""The charges period, checked against the cases of Lago's own date specs (getlago/lago-api).

Lago's specs mostly run the dates services in billing mode (``current_usage: false``): billed on
``billing_at``, a plan paid in arrears bills the charges of the period holding ``billing_at`` minus
one interval, and the period holding ``billing_at`` is the one current usage shows that day (it is
also the subscription-fee period of a plan paid in advance). Each case below names its spec and
context, the instant ``at`` the period is asked for, and Lago's expected bounds as Lago prints them
(``Time#to_s`` in UTC); None where the spec does not assert that bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.meters.periods import (
    BillingTime,
    Interval,
    Period,
    Terms,
    current_period,
    local_days,
    period_at,
)

DATES = "spec/services/subscriptions/dates_service_spec.rb"
WEEKLY = "spec/services/subscriptions/dates/weekly_service_spec.rb"
MONTHLY = "spec/services/subscriptions/dates/monthly_service_spec.rb"
QUARTERLY = "spec/services/subscriptions/dates/quarterly_service_spec.rb"
SEMIANNUAL = "spec/services/subscriptions/dates/semiannual_service_spec.rb"
YEARLY = "spec/services/subscriptions/dates/yearly_service_spec.rb"

NY = "America/New_York"


def utc(text: str) -> datetime:
    """``Time.zone.parse`` with Lago's test zone (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def lago(moment: datetime) -> str:
    """A UTC instant as Ruby prints it: ``2022-03-01 23:59:59 UTC`` (fractions dropped)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Case:
    spec: str
    context: str
    interval: Interval
    billing_time: BillingTime
    subscription_at: str
    at: str
    start: str | None
    end: str | None
    started_at: str | None = None  # defaults to subscription_at, as in the specs
    timezone: str = "UTC"
    bill_charges_monthly: bool = False
    terminated_at: str | None = None

    def terms(self) -> Terms:
        return Terms(
            interval=self.interval,
            billing_time=self.billing_time,
            subscription_at=utc(self.subscription_at),
            started_at=utc(self.started_at or self.subscription_at),
            timezone=self.timezone,
            bill_charges_monthly=self.bill_charges_monthly,
            terminated_at=utc(self.terminated_at) if self.terminated_at else None,
        )


FIXED_CHARGE_INTERVALS: list[tuple[Interval, str, str]] = [
    ("monthly", "2022-03-02 00:00:00 UTC", "2022-04-01 23:59:59 UTC"),
    ("yearly", "2022-02-02 00:00:00 UTC", "2023-02-01 23:59:59 UTC"),
    ("semiannual", "2022-02-02 00:00:00 UTC", "2022-08-01 23:59:59 UTC"),
    ("quarterly", "2022-02-02 00:00:00 UTC", "2022-05-01 23:59:59 UTC"),
    ("weekly", "2022-03-01 00:00:00 UTC", "2022-03-07 23:59:59 UTC"),
]

CASES = [
    # --- dates_service_spec.rb: ".fixed_charge_pay_in_advance_interval" runs with current_usage:
    # true; fixed charges share the charges dates on these plans. Anniversary, 02 Feb 2021 (Tue).
    *(
        Case(
            DATES,
            f"fixed_charge_pay_in_advance_interval: when interval is {iv}",
            iv,
            "anniversary",
            "2021-02-02",
            "2022-03-07T04:20:46.011",
            start,
            end,
        )
        for iv, start, end in FIXED_CHARGE_INTERVALS
    ),
    # --- weekly: subscription_at 02 Feb 2021, a Tuesday; calendar weeks start on Monday.
    Case(
        WEEKLY,
        "from/to_datetime: when billing_time is calendar (billed 07 Mar 2022)",
        "weekly",
        "calendar",
        "2021-02-02",
        "2022-02-28T10:00",
        "2022-02-28 00:00:00 UTC",
        "2022-03-06 23:59:59 UTC",
    ),
    Case(
        WEEKLY,
        "from/to_datetime: calendar, with customer timezone (billed 07 Mar 2022)",
        "weekly",
        "calendar",
        "2021-02-02",
        "2022-02-28T00:00",
        "2022-02-21 05:00:00 UTC",
        "2022-02-28 04:59:59 UTC",
        timezone=NY,
    ),
    Case(
        WEEKLY,
        "from/to_datetime: calendar, when plan is pay in advance (billed 07 Mar 2022)",
        "weekly",
        "calendar",
        "2021-02-02",
        "2022-03-07",
        None,
        "2022-03-13 23:59:59 UTC",
    ),
    Case(
        WEEKLY,
        "from/to_datetime: when billing_time is anniversary (billed 09 Mar 2022)",
        "weekly",
        "anniversary",
        "2021-02-02",
        "2022-03-02",
        "2022-03-01 00:00:00 UTC",
        "2022-03-07 23:59:59 UTC",
    ),
    Case(
        WEEKLY,
        "to_datetime: anniversary, when plan is pay in advance (billed 09 Mar 2022)",
        "weekly",
        "anniversary",
        "2021-02-02",
        "2022-03-09",
        "2022-03-08 00:00:00 UTC",
        "2022-03-14 23:59:59 UTC",
    ),
    Case(
        WEEKLY,
        "charges_from_datetime: calendar, when subscription started in the middle of a period",
        "weekly",
        "calendar",
        "2021-02-02",
        "2022-03-04",
        "2022-03-03 00:00:00 UTC",
        "2022-03-06 23:59:59 UTC",
        started_at="2022-03-03",
    ),
    Case(
        WEEKLY,
        "charges_from_datetime: anniversary, when subscription started in the middle of a period",
        "weekly",
        "anniversary",
        "2021-02-02",
        "2022-03-04",
        "2022-03-03 00:00:00 UTC",
        "2022-03-07 23:59:59 UTC",
        started_at="2022-03-03",
    ),
    Case(
        WEEKLY,
        "charges_to_datetime: calendar, when subscription is terminated in the middle of a period",
        "weekly",
        "calendar",
        "2021-02-02",
        "2022-03-05",
        "2022-02-28 00:00:00 UTC",
        "2022-03-06 00:00:00 UTC",
        terminated_at="2022-03-06",
    ),
    # --- monthly: subscription_at 02 Feb 2021.
    Case(
        MONTHLY,
        "from/to_datetime: when billing_time is calendar (billed 01 Mar 2022)",
        "monthly",
        "calendar",
        "2021-02-02",
        "2022-02-01",
        "2022-02-01 00:00:00 UTC",
        "2022-02-28 23:59:59 UTC",
    ),
    Case(
        MONTHLY,
        "from/to_datetime: calendar, with customer timezone (billed 01 Mar 2022)",
        "monthly",
        "calendar",
        "2021-02-02",
        "2022-02-01T00:00",
        "2022-01-01 05:00:00 UTC",
        "2022-02-01 04:59:59 UTC",
        timezone=NY,
    ),
    Case(
        MONTHLY,
        "to_datetime: calendar, when plan is pay in advance (billed 01 Mar 2022)",
        "monthly",
        "calendar",
        "2021-02-02",
        "2022-03-01",
        None,
        "2022-03-31 23:59:59 UTC",
    ),
    Case(
        MONTHLY,
        "from/to_datetime: when billing_time is anniversary (billed 02 Mar 2022)",
        "monthly",
        "anniversary",
        "2021-02-02",
        "2022-02-02",
        "2022-02-02 00:00:00 UTC",
        "2022-03-01 23:59:59 UTC",
    ),
    Case(
        MONTHLY,
        "to_datetime: anniversary, when billing last month of year (billed 04 Jan 2022)",
        "monthly",
        "anniversary",
        "2021-02-02",
        "2021-12-04",
        "2021-12-02 00:00:00 UTC",
        "2022-01-01 23:59:59 UTC",
    ),
    Case(
        MONTHLY,
        "to_datetime: anniversary, when billing subscription day does not exist in "
        "the month (31 Jan, billed 28 Feb 2022)",
        "monthly",
        "anniversary",
        "2022-01-31",
        "2022-01-31",
        None,
        "2022-02-27 23:59:59 UTC",
    ),
    Case(
        MONTHLY,
        "to_datetime: ... when subscription is not the last day of the month (30 Jan, "
        "billed 28 Feb 2022)",
        "monthly",
        "anniversary",
        "2022-01-30",
        "2022-01-30",
        None,
        "2022-02-27 23:59:59 UTC",
    ),
    Case(
        MONTHLY,
        "to_datetime: anniversary, when anniversary date is first day of the month "
        "(billed 02 Mar 2022)",
        "monthly",
        "anniversary",
        "2022-01-01",
        "2022-02-02",
        "2022-02-01 00:00:00 UTC",
        "2022-02-28 23:59:59 UTC",
    ),
    Case(
        MONTHLY,
        "to_datetime: anniversary, when plan is pay in advance (billed 02 Mar 2022)",
        "monthly",
        "anniversary",
        "2021-02-02",
        "2022-03-02",
        "2022-03-02 00:00:00 UTC",
        "2022-04-01 23:59:59 UTC",
    ),
    Case(
        MONTHLY,
        "from_datetime: anniversary, when plan is in advance and date is on the last day of month",
        "monthly",
        "anniversary",
        "2021-03-31",
        "2021-04-30",
        "2021-04-30 00:00:00 UTC",
        None,
    ),
    Case(
        MONTHLY,
        "from_datetime: ... when billing month is longer than subscription one",
        "monthly",
        "anniversary",
        "2020-01-31",
        "2020-02-29",
        "2020-02-29 00:00:00 UTC",
        None,
    ),
    # billed 30 Apr 2021: compute_base_date moves 30 Mar onto the anniversary, 31 Mar.
    Case(
        MONTHLY,
        "from_datetime: anniversary, when plan is in arrear and date is on the last day of month",
        "monthly",
        "anniversary",
        "2021-03-31",
        "2021-03-31",
        "2021-03-31 00:00:00 UTC",
        None,
    ),
    Case(
        MONTHLY,
        "from_datetime: ... when subscription month is shorter than billing one "
        "(billed 30 Mar 2020)",
        "monthly",
        "anniversary",
        "2019-04-30",
        "2020-02-29",
        "2020-02-29 00:00:00 UTC",
        None,
    ),
    Case(
        MONTHLY,
        "from_datetime: anniversary, when subscription is just terminated, when "
        "billing day after last day of billing month",
        "monthly",
        "anniversary",
        "2021-03-31",
        "2022-03-29",
        "2022-02-28 00:00:00 UTC",
        None,
    ),
    Case(
        MONTHLY,
        "charges_from_datetime: calendar, when subscription started in the middle of a period",
        "monthly",
        "calendar",
        "2021-02-02",
        "2022-03-10",
        "2022-03-03 00:00:00 UTC",
        "2022-03-31 23:59:59 UTC",
        started_at="2022-03-03",
    ),
    Case(
        MONTHLY,
        "charges_from_datetime: anniversary, when subscription started in the middle of a period",
        "monthly",
        "anniversary",
        "2021-02-02",
        "2022-03-10",
        "2022-03-03 00:00:00 UTC",
        "2022-04-01 23:59:59 UTC",
        started_at="2022-03-03",
    ),
    # The charges start at started_at itself, not at its midnight as the fee's from_datetime does.
    Case(
        MONTHLY,
        "charges_from_datetime: calendar, when previous subscription is upgraded",
        "monthly",
        "calendar",
        "2021-02-02",
        "2024-02-25",
        "2024-02-22 16:13:00 UTC",
        "2024-02-29 23:59:59 UTC",
        started_at="2024-02-22T16:13:00",
    ),
    Case(
        MONTHLY,
        "charges_to_datetime: calendar, when subscription is terminated in the middle of a period",
        "monthly",
        "calendar",
        "2021-02-02",
        "2022-03-05",
        "2022-03-01 00:00:00 UTC",
        "2022-03-06 12:23:00 UTC",
        terminated_at="2022-03-06T12:23:00",
    ),
    Case(
        MONTHLY,
        "charges_to_datetime: anniversary, when subscription is terminated in the "
        "middle of a period",
        "monthly",
        "anniversary",
        "2021-02-02",
        "2022-02-20",
        "2022-02-02 00:00:00 UTC",
        "2022-03-01 00:00:00 UTC",
        terminated_at="2022-03-01",
    ),
    # --- quarterly: subscription_at 02 Feb 2021.
    Case(
        QUARTERLY,
        "from/to_datetime: when billing_time is calendar (billed 01 Jul 2022)",
        "quarterly",
        "calendar",
        "2021-02-02",
        "2022-04-01",
        "2022-04-01 00:00:00 UTC",
        "2022-06-30 23:59:59 UTC",
    ),
    # New York leaves EST for EDT inside the quarter: -05:00 at its start, -04:00 at its end.
    Case(
        QUARTERLY,
        "from/to_datetime: calendar, with customer timezone (billed 01 Jul 2022)",
        "quarterly",
        "calendar",
        "2021-02-02",
        "2022-04-01T00:00",
        "2022-01-01 05:00:00 UTC",
        "2022-04-01 03:59:59 UTC",
        timezone=NY,
    ),
    Case(
        QUARTERLY,
        "to_datetime: calendar, when plan is pay in advance (billed 01 Jul 2022)",
        "quarterly",
        "calendar",
        "2021-02-02",
        "2022-07-01",
        None,
        "2022-09-30 23:59:59 UTC",
    ),
    Case(
        QUARTERLY,
        "from/to_datetime: when billing_time is anniversary (billed 02 May 2022)",
        "quarterly",
        "anniversary",
        "2021-02-02",
        "2022-02-02",
        "2022-02-02 00:00:00 UTC",
        "2022-05-01 23:59:59 UTC",
    ),
    Case(
        QUARTERLY,
        "from_datetime: when date is in first quarter / to_datetime: when billing "
        "last quarter of the year (billed 02 Feb 2022)",
        "quarterly",
        "anniversary",
        "2021-02-02",
        "2021-11-02",
        "2021-11-02 00:00:00 UTC",
        "2022-02-01 23:59:59 UTC",
    ),
    Case(
        QUARTERLY,
        "from_datetime: anniversary, when date is on the last day of the month "
        "(billed 31 May 2022)",
        "quarterly",
        "anniversary",
        "2021-02-28",
        "2022-02-28",
        "2022-02-28 00:00:00 UTC",
        None,
    ),
    Case(
        QUARTERLY,
        "from_datetime: ... just terminated, when billing day after last day of billing month",
        "quarterly",
        "anniversary",
        "2021-05-30",
        "2022-05-29",
        "2022-02-28 00:00:00 UTC",
        None,
    ),
    Case(
        QUARTERLY,
        "from_datetime: ... just terminated, when billing day in the second month of the year",
        "quarterly",
        "anniversary",
        "2021-02-28",
        "2022-02-27",
        "2021-11-28 00:00:00 UTC",
        None,
    ),
    Case(
        QUARTERLY,
        "from_datetime: anniversary, when plan is in advance and date is on the last day of month",
        "quarterly",
        "anniversary",
        "2021-01-31",
        "2021-04-30",
        "2021-04-30 00:00:00 UTC",
        None,
    ),
    Case(
        QUARTERLY,
        "from_datetime: anniversary, when date is not on a billing month (current_usage)",
        "quarterly",
        "anniversary",
        "2023-04-06",
        "2023-08-08",
        "2023-07-06 00:00:00 UTC",
        None,
    ),
    Case(
        QUARTERLY,
        "from_datetime: anniversary, when date is not on a billing month and day "
        "is less than subscription day (current_usage)",
        "quarterly",
        "anniversary",
        "2023-04-06",
        "2023-08-04",
        "2023-07-06 00:00:00 UTC",
        None,
    ),
    Case(
        QUARTERLY,
        "to_datetime: anniversary, when billing subscription day does not exist in "
        "the month (billed 01 Mar 2022)",
        "quarterly",
        "anniversary",
        "2021-11-30",
        "2021-12-01",
        None,
        "2022-02-27 23:59:59 UTC",
    ),
    Case(
        QUARTERLY,
        "to_datetime: ... when subscription is not the last day of the month (billed 30 Apr 2022)",
        "quarterly",
        "anniversary",
        "2022-01-30",
        "2022-01-30",
        None,
        "2022-04-29 23:59:59 UTC",
    ),
    Case(
        QUARTERLY,
        "to_datetime: anniversary, when anniversary date is first day of the "
        "quarter (billed 02 Apr 2022)",
        "quarterly",
        "anniversary",
        "2021-10-01",
        "2022-01-02",
        "2022-01-01 00:00:00 UTC",
        "2022-03-31 23:59:59 UTC",
    ),
    Case(
        QUARTERLY,
        "to_datetime: anniversary, when plan is pay in advance (billed 02 May 2022)",
        "quarterly",
        "anniversary",
        "2021-02-02",
        "2022-05-02",
        None,
        "2022-08-01 23:59:59 UTC",
    ),
    Case(
        QUARTERLY,
        "charges_from_datetime: anniversary, when subscription started in the middle of a period",
        "quarterly",
        "anniversary",
        "2021-02-02",
        "2022-05-10",
        "2022-05-03 00:00:00 UTC",
        "2022-08-01 23:59:59 UTC",
        started_at="2022-05-03",
    ),
    # --- semiannual: subscription_at 02 Feb 2021 (calendar), 02 Nov 2021 (anniversary).
    Case(
        SEMIANNUAL,
        "from/to_datetime: when billing_time is calendar (billed 01 Jul 2022)",
        "semiannual",
        "calendar",
        "2021-02-02",
        "2022-01-01",
        "2022-01-01 00:00:00 UTC",
        "2022-06-30 23:59:59 UTC",
    ),
    Case(
        SEMIANNUAL,
        "from/to_datetime: calendar, with customer timezone (billed 01 Jul 2022)",
        "semiannual",
        "calendar",
        "2021-02-02",
        "2022-01-01T00:00",
        "2021-07-01 04:00:00 UTC",
        "2022-01-01 04:59:59 UTC",
        timezone=NY,
    ),
    Case(
        SEMIANNUAL,
        "to_datetime: calendar, when plan is pay in advance (billed 01 Jul 2022)",
        "semiannual",
        "calendar",
        "2021-02-02",
        "2022-07-01",
        None,
        "2022-12-31 23:59:59 UTC",
    ),
    Case(
        SEMIANNUAL,
        "from/to_datetime: when billing_time is anniversary (billed 02 May 2022)",
        "semiannual",
        "anniversary",
        "2021-11-02",
        "2021-11-02",
        "2021-11-02 00:00:00 UTC",
        "2022-05-01 23:59:59 UTC",
    ),
    Case(
        SEMIANNUAL,
        "to_datetime: anniversary, when billing last half year of the year (billed 02 Feb 2022)",
        "semiannual",
        "anniversary",
        "2021-02-02",
        "2021-08-02",
        "2021-08-02 00:00:00 UTC",
        "2022-02-01 23:59:59 UTC",
    ),
    Case(
        SEMIANNUAL,
        "from_datetime: anniversary, when date is on the last day of the month "
        "(billed 31 May 2022)",
        "semiannual",
        "anniversary",
        "2021-11-30",
        "2021-11-30",
        "2021-11-30 00:00:00 UTC",
        None,
    ),
    Case(
        SEMIANNUAL,
        "from_datetime: ... just terminated, when billing day after last day of billing month",
        "semiannual",
        "anniversary",
        "2021-05-30",
        "2022-05-29",
        "2021-11-30 00:00:00 UTC",
        None,
    ),
    Case(
        SEMIANNUAL,
        "from_datetime: ... just terminated, when billing day in the second month of the year",
        "semiannual",
        "anniversary",
        "2021-02-28",
        "2022-02-27",
        "2021-08-28 00:00:00 UTC",
        None,
    ),
    Case(
        SEMIANNUAL,
        "from_datetime: anniversary, when plan is in advance and date is on the "
        "last day of month (April is not a billing month)",
        "semiannual",
        "anniversary",
        "2021-01-31",
        "2021-04-30",
        "2021-01-31 00:00:00 UTC",
        None,
    ),
    Case(
        SEMIANNUAL,
        "from_datetime: anniversary, when date is not on a billing month (current_usage)",
        "semiannual",
        "anniversary",
        "2023-01-06",
        "2023-08-08",
        "2023-07-06 00:00:00 UTC",
        None,
    ),
    Case(
        SEMIANNUAL,
        "from_datetime: anniversary, when date is not on a billing month and day "
        "is less than subscription day (current_usage)",
        "semiannual",
        "anniversary",
        "2023-01-06",
        "2023-08-04",
        "2023-07-06 00:00:00 UTC",
        None,
    ),
    Case(
        SEMIANNUAL,
        "to_datetime: anniversary, when billing subscription day does not exist "
        "in the month (billed 01 Jun 2022)",
        "semiannual",
        "anniversary",
        "2021-11-30",
        "2021-12-01",
        None,
        "2022-05-29 23:59:59 UTC",
    ),
    Case(
        SEMIANNUAL,
        "to_datetime: ... when subscription is not the last day of the month (billed 30 Jul 2022)",
        "semiannual",
        "anniversary",
        "2022-01-30",
        "2022-01-30",
        None,
        "2022-07-29 23:59:59 UTC",
    ),
    Case(
        SEMIANNUAL,
        "to_datetime: anniversary, when anniversary date is first day of the half "
        "year (billed 02 Apr 2022)",
        "semiannual",
        "anniversary",
        "2021-10-01",
        "2021-10-02",
        "2021-10-01 00:00:00 UTC",
        "2022-03-31 23:59:59 UTC",
    ),
    Case(
        SEMIANNUAL,
        "to_datetime: anniversary, when plan is pay in advance (billed 02 May 2022)",
        "semiannual",
        "anniversary",
        "2021-11-02",
        "2022-05-02",
        None,
        "2022-11-01 23:59:59 UTC",
    ),
    Case(
        SEMIANNUAL,
        "charges_from_datetime: when plan has charges monthly, when charges "
        "should be billed (billed 01 Jul 2022)",
        "semiannual",
        "calendar",
        "2020-02-02",
        "2022-06-01",
        "2022-06-01 00:00:00 UTC",
        "2022-06-30 23:59:59 UTC",
        bill_charges_monthly=True,
    ),
    Case(
        SEMIANNUAL,
        "charges_from_datetime: when plan has charges monthly, when charges "
        "should billed as monthly (billed 01 Feb 2023)",
        "semiannual",
        "calendar",
        "2020-02-02",
        "2023-01-01",
        "2023-01-01 00:00:00 UTC",
        None,
        bill_charges_monthly=True,
    ),
    # --- yearly: subscription_at 02 Feb 2021.
    Case(
        YEARLY,
        "from/to_datetime: when billing_time is calendar (billed 01 Jan 2022)",
        "yearly",
        "calendar",
        "2020-02-02",
        "2021-01-01",
        "2021-01-01 00:00:00 UTC",
        "2021-12-31 23:59:59 UTC",
    ),
    Case(
        YEARLY,
        "from/to_datetime: calendar, with customer timezone (billed 01 Jan 2022)",
        "yearly",
        "calendar",
        "2019-02-02",
        "2021-01-01T00:00",
        "2020-01-01 05:00:00 UTC",
        "2021-01-01 04:59:59 UTC",
        timezone=NY,
    ),
    Case(
        YEARLY,
        "to_datetime: calendar, when plan is pay in advance (billed 01 Jan 2022)",
        "yearly",
        "calendar",
        "2020-02-02",
        "2022-01-01",
        None,
        "2022-12-31 23:59:59 UTC",
    ),
    Case(
        YEARLY,
        "from/to_datetime: when billing_time is anniversary (billed 02 Feb 2022)",
        "yearly",
        "anniversary",
        "2021-02-02",
        "2021-02-02",
        "2021-02-02 00:00:00 UTC",
        "2022-02-01 23:59:59 UTC",
    ),
    Case(
        YEARLY,
        "from_datetime: anniversary, when current usage is true and current month is "
        "the same as starting month",
        "yearly",
        "anniversary",
        "2023-03-29",
        "2024-03-15",
        "2023-03-29 00:00:00 UTC",
        None,
    ),
    Case(
        YEARLY,
        "from_datetime: when subscription date on 29/02 of a leap year (billed 28 Feb "
        "2025) / to_datetime: when billing on the clamped anniversary of a common year",
        "yearly",
        "anniversary",
        "2020-02-29",
        "2024-02-29",
        "2024-02-29 00:00:00 UTC",
        "2025-02-27 23:59:59 UTC",
    ),
    Case(
        YEARLY,
        "to_datetime: when subscription date on 29/02 of a leap year (billed 01 Mar 2022)",
        "yearly",
        "anniversary",
        "2020-02-29",
        "2021-03-01",
        None,
        "2022-02-27 23:59:59 UTC",
    ),
    Case(
        YEARLY,
        "from_datetime: just terminated, when subscription date on 29/02 of a leap "
        "year (billed 28 Mar 2022)",
        "yearly",
        "anniversary",
        "2020-02-29",
        "2022-03-28",
        "2022-02-28 00:00:00 UTC",
        None,
    ),
    Case(
        YEARLY,
        "from_datetime: just terminated, when billing month is before subscription "
        "month (billed 03 Jan 2022)",
        "yearly",
        "anniversary",
        "2021-02-02",
        "2022-01-03",
        "2021-02-02 00:00:00 UTC",
        None,
    ),
    Case(
        YEARLY,
        "to_datetime: anniversary, when anniversary date is first day of the year "
        "(billed 02 Mar 2022)",
        "yearly",
        "anniversary",
        "2021-01-01",
        "2021-03-02",
        "2021-01-01 00:00:00 UTC",
        "2021-12-31 23:59:59 UTC",
    ),
    Case(
        YEARLY,
        "to_datetime: anniversary, when anniversary date is first day of a month "
        "(billed 02 Jan 2024)",
        "yearly",
        "anniversary",
        "2022-12-01",
        "2023-01-02",
        "2022-12-01 00:00:00 UTC",
        "2023-11-30 23:59:59 UTC",
    ),
    Case(
        YEARLY,
        "to_datetime: anniversary, when plan is pay in advance (billed 02 Feb 2022)",
        "yearly",
        "anniversary",
        "2021-02-02",
        "2022-02-02",
        None,
        "2023-02-01 23:59:59 UTC",
    ),
    Case(
        YEARLY,
        "charges_from_datetime: anniversary, when subscription started in the middle of a period",
        "yearly",
        "anniversary",
        "2021-02-02",
        "2022-03-10",
        "2022-03-03 00:00:00 UTC",
        "2023-02-01 23:59:59 UTC",
        started_at="2022-03-03",
    ),
    Case(
        YEARLY,
        "charges_from_datetime: anniversary, when billing charge monthly (billed 02 Feb 2022)",
        "yearly",
        "anniversary",
        "2021-02-02",
        "2022-01-02",
        "2022-01-02 00:00:00 UTC",
        "2022-02-01 23:59:59 UTC",
        bill_charges_monthly=True,
    ),
    Case(
        YEARLY,
        "charges_to_datetime: calendar, billing charge monthly, when plan is pay in "
        "advance (billed 07 Mar 2022)",
        "yearly",
        "calendar",
        "2020-02-02",
        "2022-02-07",
        "2022-02-01 00:00:00 UTC",
        "2022-02-28 23:59:59 UTC",
        bill_charges_monthly=True,
    ),
    Case(
        YEARLY,
        "charges_from/to_datetime: when plan has charges monthly, when charges should "
        "billed as monthly (billed 01 Feb 2023)",
        "yearly",
        "calendar",
        "2020-02-02",
        "2023-01-15",
        "2023-01-01 00:00:00 UTC",
        "2023-01-31 23:59:59 UTC",
        bill_charges_monthly=True,
    ),
    Case(
        YEARLY,
        "charges_from/to_datetime: when plan has fixed_charges monthly, when charges "
        "should not be billed, when current_usage is true",
        "yearly",
        "calendar",
        "2020-02-02",
        "2023-02-01",
        "2023-01-01 00:00:00 UTC",
        "2023-12-31 23:59:59 UTC",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.spec.rsplit('/', 1)[-1]}: {c.context}")
def test_lago_spec_cases(case: Case) -> None:
    period = current_period(case.terms(), utc(case.at))
    assert period is not None
    if case.start is not None:
        assert lago(period.start) == case.start
    if case.end is not None:
        assert lago(period.end) == case.end
    # The period holds its own bounds, and asking at either gives the same period.
    assert period.contains(period.start)
    assert period.contains(period.end)
    assert current_period(case.terms(), period.start) == period
    assert current_period(case.terms(), period.end) == period


# --- not from a Lago spec: the same rules in other places and at the edges ---------------------


def terms(
    interval: Interval, billing_time: BillingTime, subscription_at: datetime, **more: object
) -> Terms:
    started_at = more.pop("started_at", subscription_at)
    return Terms(interval, billing_time, subscription_at, started_at, **more)  # type: ignore[arg-type]


def test_asia_kolkata_midnight_is_1830_utc() -> None:
    monthly = terms("monthly", "calendar", utc("2024-01-01"), timezone="Asia/Kolkata")
    # 2024-02-29 18:30 UTC is 1 Mar 00:00 in India (+05:30): March has begun there.
    march = current_period(monthly, utc("2024-02-29T18:30"))
    assert march == Period(start=utc("2024-02-29T18:30"), end=utc("2024-03-31T18:29:59.999999"))
    february = current_period(monthly, utc("2024-02-29T18:29:59.999999"))
    assert february is not None
    assert february.start == utc("2024-01-31T18:30")
    assert february.end == march.start - timedelta(microseconds=1)


def test_anniversary_day_is_read_in_the_customer_timezone() -> None:
    # 02 Feb 2021 02:00 UTC is Monday 1 Feb 21:00 in New York: weeks start on Mondays there.
    weekly = terms("weekly", "anniversary", utc("2021-02-02T02:00"), timezone=NY)
    assert local_days(weekly, utc("2022-03-09T12:00")) == (date(2022, 3, 7), date(2022, 3, 13))
    # The 31st in New York is the 1st in UTC: the monthly anniversary is the month's last day.
    monthly = terms("monthly", "anniversary", utc("2021-02-01T03:00"), timezone=NY)
    assert local_days(monthly, utc("2021-03-15T12:00")) == (date(2021, 2, 28), date(2021, 3, 30))


def test_first_period_starts_at_started_at_and_nothing_before_it() -> None:
    sub = terms("monthly", "calendar", utc("2024-03-15T09:30"))
    period = current_period(sub, utc("2024-03-20"))
    assert period == Period(start=utc("2024-03-15T09:30"), end=utc("2024-03-31T23:59:59.999999"))
    assert period_at(sub, utc("2024-03-15T09:29:59")) is None
    # Lago clamps both bounds onto started_at when asked before it.
    before = current_period(sub, utc("2024-02-10"))
    assert before == Period(start=utc("2024-03-15T09:30"), end=utc("2024-03-15T09:30"))


def test_terminated_subscription_ends_at_termination() -> None:
    sub = terms("monthly", "calendar", utc("2024-01-01"), terminated_at=utc("2024-03-10T08:00"))
    assert period_at(sub, utc("2024-03-10T08:00")) is not None
    assert period_at(sub, utc("2024-03-10T08:00:01")) is None


def test_pending_subscription_has_no_period() -> None:
    sub = terms("monthly", "calendar", utc("2024-01-01"), started_at=None)
    assert current_period(sub, utc("2024-03-10")) is None
    assert period_at(sub, utc("2024-03-10")) is None


def test_contains_at_the_boundaries() -> None:
    period = current_period(terms("monthly", "calendar", utc("2024-01-01")), utc("2024-02-10"))
    assert period is not None
    tick = timedelta(microseconds=1)
    assert period.contains(utc("2024-02-01T00:00"))
    assert not period.contains(utc("2024-02-01T00:00") - tick)
    # Rails' end_of_day: an event in the last second of the period is still in it.
    assert period.contains(utc("2024-02-29T23:59:59.5"))
    assert period.contains(utc("2024-02-29T23:59:59.999999"))
    assert not period.contains(utc("2024-03-01T00:00"))
    assert period.contains(datetime(2024, 2, 1, 1, 0, tzinfo=ZoneInfo("Europe/Paris")))
    with pytest.raises(ValueError, match="aware"):
        period.contains(datetime(2024, 2, 10))


def test_terms_are_checked() -> None:
    with pytest.raises(ValueError, match="aware"):
        Terms("monthly", "calendar", datetime(2024, 1, 1), None)
    with pytest.raises(ValueError, match="interval"):
        Terms("daily", "calendar", utc("2024-01-01"), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        Terms("monthly", "calendar", utc("2024-01-01"), None, timezone="Mars/Olympus")


def test_bill_charges_monthly_is_ignored_where_lago_ignores_it() -> None:
    plain = terms("quarterly", "calendar", utc("2024-01-01"))
    flagged = terms("quarterly", "calendar", utc("2024-01-01"), bill_charges_monthly=True)
    assert current_period(flagged, utc("2024-05-05")) == current_period(plain, utc("2024-05-05"))


ANCHORS = [
    "2020-01-31",
    "2020-02-29",
    "2021-02-28",
    "2021-03-30",
    "2021-05-31",
    "2021-08-29",
    "2021-11-30",
    "2021-01-01",
    "2021-12-01",
    "2021-06-15",
]


@pytest.mark.parametrize("interval", ["weekly", "monthly", "quarterly", "semiannual", "yearly"])
@pytest.mark.parametrize("billing_time", ["calendar", "anniversary"])
@pytest.mark.parametrize("timezone", ["UTC", NY, "Asia/Kolkata"])
def test_periods_tile_time_without_gap_or_overlap(
    interval: Interval, billing_time: BillingTime, timezone: str
) -> None:
    """Day by day over three years, each period starts one microsecond after the previous ends."""
    zone = ZoneInfo(timezone)
    for anchor in ANCHORS:
        subscription_at = datetime.fromisoformat(anchor).replace(tzinfo=zone)
        sub = terms(
            interval,
            billing_time,
            subscription_at,
            timezone=timezone,
            started_at=subscription_at - timedelta(days=3000),
        )
        previous: Period | None = None
        for offset in range(3 * 366):
            at = (subscription_at + timedelta(days=offset, hours=12)).astimezone(UTC)
            period = current_period(sub, at)
            assert period is not None
            assert period.contains(at), (anchor, at, period)
            if previous is not None and period != previous:
                assert period.start == previous.end + timedelta(microseconds=1), (anchor, at)
            previous = period
