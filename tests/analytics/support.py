"""A Lago organization with two months of invoices, for the analytics tests.

Last month: a customer ``acme`` (EUR) is made, then invoiced 2000 of a monthly subscription
and 500 of usage (``tokens``). This month: ``acme`` is invoiced 1000 of the subscription,
overdue, and ``globex`` (USD) 700 with no subscription.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lago.emulator.clock import utc_now
from tests.conftest import Gateway


@dataclass(frozen=True)
class Seeded:
    """The months (``YYYY-MM-01T00:00:00.000Z``) and the overdue invoice's id."""

    this_month: str
    last_month: str
    overdue_invoice: str


def _month(moment: datetime) -> str:
    return f"{moment:%Y-%m}-01T00:00:00.000Z"


async def seed(gw: Gateway) -> Seeded:
    """Make the organization described above, straight in Lago."""
    state, lago = gw.emulator, gw.runtime.lago
    now = datetime.now(UTC)
    before = (now.replace(day=1) - timedelta(days=1)).replace(day=15, hour=12)
    state.clock = lambda: before
    for external_id, currency in (("acme", "EUR"), ("globex", "USD")):
        customer = {"external_id": external_id, "currency": currency}
        await lago.call("POST", "/customers", json={"customer": customer})
    state.clock = utc_now
    plan = {"name": "Pro", "code": "pro", "interval": "monthly", "amount_cents": 2000}
    plan |= {"amount_currency": "EUR", "pay_in_advance": False}
    await lago.call("POST", "/plans", json={"plan": plan})
    subscription = {"external_customer_id": "acme", "plan_code": "pro", "external_id": "sub"}
    made = await lago.call("POST", "/subscriptions", json={"subscription": subscription})
    sub = made["subscription"]["lago_id"]
    fee: dict[str, Any] = {"item": {"type": "subscription"}, "lago_subscription_id": sub}
    usage = {"item": {"type": "charge", "code": "tokens"}, "lago_subscription_id": sub}
    usage |= {"amount_cents": 500, "created_at": f"{before:%Y-%m-%dT%H:%M:%SZ}"}
    earlier = state.issue_invoice("acme", 0, "EUR", fees=[fee | {"amount_cents": 2000}, usage])
    state.invoices[earlier["lago_id"]]["issuing_date"] = before.date().isoformat()
    overdue = state.issue_invoice("acme", 0, "EUR", fees=[fee | {"amount_cents": 1000}])
    state.invoices[overdue["lago_id"]]["payment_overdue"] = True
    state.issue_invoice("globex", 700, "USD")
    return Seeded(_month(now), _month(before), overdue["lago_id"])
