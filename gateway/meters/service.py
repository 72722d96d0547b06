"""The meters of one process: which metrics are metered, subscriptions' billing terms
(cached), and what each accepted event adds to which meter.

Terms come from the table ``meter_subscriptions``, filled from Lago's answers (a
subscription created through the gateway, its subscription webhooks, a hold or balance
asking about a subscription first seen). Ingest reads them through a short in-process
cache and never calls Lago: an event whose subscription's terms are not known yet is not
metered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import quote

import orjson

from gateway.db import Database
from gateway.integrations.lago.client import LagoApiError, LagoClient, LagoError
from gateway.logging import get_logger
from gateway.meters import periods, store
from gateway.meters.metering import Delta, MeterRule, deltas

log = get_logger(__name__)
TERMS_TTL = 30.0  # how long a process trusts its copy of a subscription's terms
UNKNOWN_TTL = 5.0  # and how long it remembers that it has none
ACTIVE = "active"


class Metered(NamedTuple):
    """An accepted event, as far as meters care."""

    external_subscription_id: str
    transaction_id: str
    code: str
    timestamp: float
    properties: Mapping[str, Any] | None


def _moment(value: Any) -> float | None:
    """Lago's ISO 8601 time as Unix seconds (None stays None)."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def terms_row(
    subscription: Mapping[str, Any],
    plan: Mapping[str, Any] | None,
    timezone: str,
    entitlements: list[Any] | None = None,
) -> dict[str, Any]:
    """The ``meter_subscriptions`` row of a Lago subscription object (and its plan)."""
    plan = plan or subscription.get("plan") or {}
    subscribed = _moment(subscription.get("subscription_at")) or _moment(
        subscription.get("started_at")
    )
    return {
        "external_id": subscription["external_id"],
        "external_customer_id": subscription["external_customer_id"],
        "plan_code": subscription["plan_code"],
        "status": subscription.get("status") or ACTIVE,
        "interval": plan.get("interval") or "monthly",
        "billing_time": subscription.get("billing_time") or "calendar",
        "bill_charges_monthly": int(bool(plan.get("bill_charges_monthly"))),
        "timezone": timezone or "UTC",
        "subscription_at": subscribed or time.time(),
        "started_at": _moment(subscription.get("started_at")),
        "ending_at": _moment(subscription.get("ending_at")),
        "period_start": _moment(subscription.get("current_billing_period_started_at")),
        "period_end": _moment(subscription.get("current_billing_period_ending_at")),
        "entitlements": None if entitlements is None else orjson.dumps(entitlements).decode(),
        "learned_at": time.time(),
    }


class Terms(NamedTuple):
    """A subscription's stored terms and the period they were last seen in."""

    row: dict[str, Any]
    period: tuple[float, float] | None

    @property
    def customer(self) -> str:
        return str(self.row["external_customer_id"])

    @property
    def plan_code(self) -> str:
        return str(self.row["plan_code"])

    @property
    def entitlements(self) -> list[Any] | None:
        """Lago's entitlements of the subscription (overrides applied), when known."""
        stored = self.row.get("entitlements")
        return None if stored is None else list(orjson.loads(stored))

    @property
    def active(self) -> bool:
        return bool(self.row["status"] == ACTIVE)

    def dates(self) -> periods.Terms:
        row = self.row
        return periods.Terms(
            interval=row["interval"],
            billing_time=row["billing_time"],
            subscription_at=_at(row["subscription_at"]),
            started_at=None if row["started_at"] is None else _at(row["started_at"]),
            timezone=row["timezone"],
            bill_charges_monthly=bool(row["bill_charges_monthly"]),
        )

    def period_of(self, moment: float) -> tuple[float, float] | None:
        """(start, end) Unix seconds of the billing period ``moment`` falls in."""
        if self.period is not None and self.period[0] <= moment <= self.period[1]:
            return self.period
        found = periods.period_at(self.dates(), _at(moment))
        if found is None:
            return None
        return (found.start.timestamp(), found.end.timestamp())


def terms_of(row: dict[str, Any]) -> Terms:
    start, end = row.get("period_start"), row.get("period_end")
    return Terms(row, None if start is None or end is None else (start, end))


class Meters:
    """Metering for one process: rules by metric, cached terms, background learning."""

    def __init__(
        self, database: Database, lago: LagoClient, rules: Mapping[str, MeterRule]
    ) -> None:
        self.database = database
        self.lago = lago
        self.rules = dict(rules)
        self._terms: dict[str, tuple[float, Terms | None]] = {}
        # Set at wiring (``reconciler.Reconciler.seed``): a subscription learned on first
        # sight gets its meters from Lago at once (its earlier events were not metered).
        self.seed: Callable[[Mapping[str, Any]], Awaitable[None]] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    def forget(self, external_id: str) -> None:
        self._terms.pop(external_id, None)

    async def terms(self, external_ids: Sequence[str]) -> dict[str, Terms]:
        """The known terms of these subscriptions (cache, then the table)."""
        now = time.monotonic()
        found: dict[str, Terms] = {}
        missing: list[str] = []
        for external_id in dict.fromkeys(external_ids):
            cached = self._terms.get(external_id)
            if cached is not None and cached[0] > now:
                if cached[1] is not None:
                    found[external_id] = cached[1]
            else:
                missing.append(external_id)
        if missing:
            async with self.database.engine.connect() as conn:
                rows = await store.terms_of(conn, missing)
            for row in rows:
                found[row["external_id"]] = self._remember(terms_of(row))
            for external_id in missing:
                if external_id not in found:
                    self._terms[external_id] = (now + UNKNOWN_TTL, None)
        return found

    def _remember(self, terms: Terms) -> Terms:
        self._terms[terms.row["external_id"]] = (time.monotonic() + TERMS_TTL, terms)
        return terms

    async def deltas(self, events: Sequence[Metered]) -> list[Delta]:
        """What these accepted events add to meters: events of a subscription whose terms
        are not known yet are left out (ingest never waits on Lago)."""
        if not self.rules:
            return []
        subs = [e.external_subscription_id for e in events if e.code in self.rules]
        if not subs:
            return []
        known = await self.terms(subs)
        found: list[Delta] = []
        for event in events:
            rule = self.rules.get(event.code)
            if rule is None:
                continue
            terms = known.get(event.external_subscription_id)
            if terms is None:
                continue
            period = terms.period_of(event.timestamp)
            if period is None:
                continue
            found += deltas(
                rule,
                event.external_subscription_id,
                event.transaction_id,
                event.code,
                period[0],
                event.timestamp,
                event.properties,
            )
        return found

    # Learning terms from Lago -----------------------------------------------------------

    async def learn(self, external_id: str) -> Terms | None:
        """Read a subscription from Lago and store its terms; None when Lago does not know
        it or cannot be reached."""
        if not external_id.strip():
            return None
        try:
            body = await self.lago.call("GET", f"/subscriptions/{_q(external_id)}")
        except LagoApiError as exc:
            if exc.status != 404:
                log.warning("meters.learn_failed", status=exc.status)
            return None
        except LagoError as exc:
            log.warning("meters.learn_failed", error=type(exc).__name__)
            return None
        subscription = body.get("subscription")
        if not isinstance(subscription, dict) or subscription.get("external_id") != external_id:
            return None
        return await self.adopt(subscription, first_sight=True)

    async def adopt(
        self, subscription: Mapping[str, Any], *, first_sight: bool = False
    ) -> Terms | None:
        """Store the terms of a Lago subscription object (an answer or a webhook's), asking
        Lago for what it lacks: its customer's timezone, its plan's interval. ``first_sight``:
        one the gateway had not seen (its earlier events unmetered), seeded from Lago."""
        try:
            customer = subscription.get("customer")
            if customer is None:
                path = f"/customers/{_q(str(subscription['external_customer_id']))}"
                customer = (await self.lago.call("GET", path)).get("customer") or {}
            plan = subscription.get("plan")
            if plan is None:
                path = f"/plans/{_q(str(subscription['plan_code']))}"
                plan = (await self.lago.call("GET", path)).get("plan") or {}
        except LagoError as exc:
            log.warning("meters.learn_failed", error=type(exc).__name__)
            return None
        entitlements = await self._entitlements(str(subscription["external_id"]))
        terms = await self.save(subscription, plan, _timezone(customer), entitlements)
        if first_sight and self.seed is not None and self.enabled and terms.active:
            await self.seed(terms.row)
        return terms

    async def _entitlements(self, external_id: str) -> list[Any] | None:
        """Lago's entitlements of a subscription; None when Lago cannot say."""
        try:
            body = await self.lago.call("GET", f"/subscriptions/{_q(external_id)}/entitlements")
        except LagoError:
            return None
        found = body.get("entitlements")
        return list(found) if isinstance(found, list) else None

    async def save_entitlements(self, external_id: str, entitlements: list[Any]) -> None:
        """The subscription's entitlements as Lago answered a change of them."""
        async with self.database.engine.begin() as conn:
            await store.save_entitlements(conn, external_id, orjson.dumps(entitlements).decode())
        self.forget(external_id)

    async def save(
        self,
        subscription: Mapping[str, Any],
        plan: Mapping[str, Any] | None,
        timezone: str,
        entitlements: list[Any] | None = None,
    ) -> Terms:
        """Store terms from a Lago subscription object (an answer or a webhook)."""
        row = terms_row(subscription, plan, timezone, entitlements)
        async with self.database.engine.begin() as conn:
            await store.save_terms(conn, row)
        return self._remember(terms_of(row))

    async def terms_or_learn(self, external_id: str) -> Terms | None:
        """Known terms, else learned from Lago now (a subscription seen for the first time)."""
        known = (await self.terms([external_id])).get(external_id)
        if known is not None:
            return known
        return await self.learn(external_id)


def _timezone(customer: Mapping[str, Any]) -> str:
    return str(customer.get("applicable_timezone") or customer.get("timezone") or "UTC")


def _q(value: str) -> str:
    return quote(value, safe="")
