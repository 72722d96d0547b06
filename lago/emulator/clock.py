"""Time formatting and billing periods, in Lago's wire formats."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta

_MONTHS = {"monthly": 1, "quarterly": 3, "semiannual": 6, "yearly": 12}
PERIODS_PER_YEAR = {"weekly": 52, "monthly": 12, "quarterly": 4, "semiannual": 2, "yearly": 1}


def new_id() -> str:
    """A Lago ``lago_id``."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Rails' ``iso8601``: whole seconds, ``Z`` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(seconds: float) -> str:
    """Rails' ``iso8601(3)`` of a unix timestamp; cheap because every event goes through it."""
    whole = int(seconds // 1)
    millis = round((seconds - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def parse_iso(value: str) -> datetime:
    """Parse an ISO 8601 datetime or date; naive values are UTC."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    days = [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return moment.replace(year=year, month=month, day=min(moment.day, days[month - 1]))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _step(moment: datetime, interval: str, count: int) -> datetime:
    if interval == "weekly":
        return moment + timedelta(weeks=count)
    return _add_months(moment, _MONTHS[interval] * count)


def _calendar_start(now: datetime, interval: str) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "weekly":
        return day - timedelta(days=day.weekday())
    months = _MONTHS[interval]
    return day.replace(month=(day.month - 1) // months * months + 1, day=1)


def billing_period(
    interval: str, billing_time: str, anchor: datetime, now: datetime
) -> tuple[datetime, datetime]:
    """The billing period containing ``now``: (start, end) with Lago's ``23:59:59`` end."""
    if billing_time == "anniversary":
        start = anchor.replace(hour=0, minute=0, second=0, microsecond=0)
        count = 0
        while _step(start, interval, count + 1) <= now:
            count += 1
        start = _step(start, interval, count)
    else:
        start = _calendar_start(now, interval)
    return start, _step(start, interval, 1) - timedelta(seconds=1)


def next_period_date(end: datetime) -> date:
    """The first day after a period ending at ``end``."""
    return (end + timedelta(seconds=1)).date()
