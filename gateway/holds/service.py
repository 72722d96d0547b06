"""Holds: reserve what a generation will use before it runs, then capture or release it.

A hold takes, in one transaction, the lock of its customer's token account
(``meters.store.lock_account``): holds of one customer are decided one at a time, in any
number of gateway processes, so the last included photo or the last tokens go to exactly
one of them. It reserves the meter's increase from the plan's included usage first
(``usage_meters.held``), the rest from tokens at the catalog's token cost
(``meter_accounts.held_tokens``) or, when the plan bills beyond its allowance in arrears,
nothing; a plan that blocks beyond it, or too few tokens, is 402 ``insufficient_credits``.

Tokens available = Lago's wallet balance (``credits_balance``, as the token account last
read it) - tokens the period's metered usage beyond the allowances costs - tokens held
(``catalog.accounting``).

Capture accepts the usage event into the outbox with the hold's transaction
id and adds it to the meters, in the transaction that returns the reservation: exactly
once, however often it is called. Release returns the reservation; a hold not captured by
``expires_at`` is released by the worker (``expire_due``) as ``expired``.

On PostgreSQL, holds, captures and releases take two round trips each on a direct psycopg
connection (``pipelined``); SQLite and the expiry job go through SQLAlchemy below. Both
decide with the same functions (``decisions``, ``cover.decide``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.catalog import accounting
from gateway.catalog.entitlements import excess, overrides_from_lago, refusal
from gateway.catalog.schemas import Catalog
from gateway.db import Database
from gateway.errors import (
    Forbidden,
    NotFound,
    UpstreamUnavailable,
    ValidationFailed,
)
from gateway.holds import decisions, pipelined, store
from gateway.holds.cover import Cover, reserve
from gateway.holds.messages import announce, shape
from gateway.holds.models import CAPTURED, EXPIRED, HELD, RELEASED
from gateway.integrations.lago.client import LagoClient, LagoError
from gateway.jobs import log_failure
from gateway.logging import get_logger
from gateway.meters import account_store as accounts
from gateway.meters import store as meters_store
from gateway.meters.metering import TOTAL
from gateway.meters.service import Metered, Meters, Terms
from gateway.packs.account import refresh_account
from gateway.relay.service import DUE
from gateway.usage import store as usage_store
from gateway.usage.lookups import LagoLookups
from gateway.usage.outbox import PENDING
from gateway.usage.parsing import EventRules, ParsedEvent, parse_event
from gateway.usage.store import OutboxRow

log = get_logger(__name__)
EXPIRY_POLL_SECONDS = 1.0
EXPIRY_BATCH = 100
ZERO = accounting.ZERO
AsyncConnection_ = psycopg.AsyncConnection[Any]


class Holds:
    """The holds capability over the meters, the outbox and the relay."""

    def __init__(
        self,
        database: Database,
        lago: LagoClient,
        meters: Meters,
        lookups: LagoLookups,
        catalog: Catalog | None,
        max_future_seconds: float = 86_400.0,
    ) -> None:
        self.database = database
        self.lago = lago
        self.meters = meters
        self.lookups = lookups
        self.catalog = catalog
        self.rules = EventRules(lookups.metric_rules, max_future_seconds)

    # Holding -----------------------------------------------------------------------------

    async def hold(self, params: Mapping[str, Any], actor: str) -> tuple[dict[str, Any], bool]:
        """The hold (new: True) or the one already made for this transaction id (False)."""
        expires_in = decisions.expires_in(params.get("expires_in"))
        terms = await self._terms(params)
        event = self._event(params, terms.row["external_id"], time.time())
        self._check_metered(event.code)
        self._check_entitled(terms, event)
        if self.database.is_postgres:
            args = (self.database, self.meters, self.catalog, terms, event, expires_in, actor)
            made = await pipelined.hold(*args)
            if made is None:  # a customer seen for the first time: its wallet, then again
                await self._read_wallet(terms.customer)
                made = await pipelined.hold(*args)
            assert made is not None
            return made
        await self._fresh_wallet(terms.customer)
        now = time.time()
        period = decisions.period(terms, now)
        async with self.database.engine.begin() as conn:
            account = await accounts.lock_account(conn, terms.customer, now)
            subscription = event.external_subscription_id or ""
            found = await store.by_key(conn, subscription, event.transaction_id)
            if found is not None:
                return decisions.same(found, event), False
            cover: Cover = await reserve(
                conn, self.catalog, self.meters.rules[event.code], terms, event, period[0], account
            )
            row = decisions.new_row(terms, event, period, cover, now, expires_in, actor)
            await store.insert(conn, row)
            key = (subscription, event.code, period[0], TOTAL)
            if cover.allowance_units:
                aggregation = self.meters.rules[event.code].aggregation
                await meters_store.add_held(conn, key, aggregation, cover.allowance_units, now)
            if cover.tokens:
                held = accounting.decimal(account["held_tokens"]) + cover.tokens
                await accounts.set_held_tokens(conn, terms.customer, accounting.text(held))
            await announce(conn, row, "hold.created", "holds.create", actor)
        self.database.wake(DUE).set()
        return shape(row), True

    async def _terms(self, params: Mapping[str, Any]) -> Terms:
        subscription = params.get("external_subscription_id")
        customer = params.get("external_customer_id")
        if subscription is None and customer is not None:
            if not isinstance(customer, str) or not customer.strip():
                raise ValidationFailed(details={"external_customer_id": ["value_is_mandatory"]})
            subscription = await self._active_subscription(customer)
        if not isinstance(subscription, str) or not subscription.strip():
            raise ValidationFailed(details={"external_subscription_id": ["value_is_mandatory"]})
        try:
            terms = await self.meters.terms_or_learn(subscription)
        except LagoError as exc:
            raise _unavailable() from exc
        if terms is None:
            raise NotFound("no such subscription", code="subscription_not_found")
        if customer is not None and terms.customer != customer:
            raise NotFound("no such subscription for this customer", code="subscription_not_found")
        if not terms.active:
            raise ValidationFailed(
                details={"external_subscription_id": ["subscription_not_active"]}
            )
        return terms

    async def _active_subscription(self, customer: str) -> str:
        try:
            subscription, reason = await self.lookups.active_subscription_of(customer)
        except LagoError as exc:
            raise _unavailable() from exc
        if subscription is None:
            raise ValidationFailed(details={"external_customer_id": [reason or "invalid_value"]})
        return subscription

    def _event(self, params: Mapping[str, Any], subscription: str, now: float) -> ParsedEvent:
        raw = {
            "transaction_id": params.get("transaction_id"),
            "external_subscription_id": subscription,
            "code": params.get("code"),
            "properties": params.get("properties"),
        }
        parsed = parse_event(raw, now, self.rules)
        if isinstance(parsed, dict):
            raise ValidationFailed(details=parsed)
        return parsed

    def _check_metered(self, code: str) -> None:
        if code not in self.meters.rules:
            raise ValidationFailed(details={"code": ["billable_metric_not_found"]})

    def _check_entitled(self, terms: Terms, event: ParsedEvent) -> None:
        if self.catalog is None:
            return
        overrides = None
        if terms.entitlements is not None:
            overrides = overrides_from_lago(self.catalog, terms.plan_code, terms.entitlements)
        properties = event.properties or {}
        refused = refusal(self.catalog, terms.plan_code, event.code, properties, overrides)
        if refused is not None:
            raise Forbidden(
                f"the plan does not include the feature {refused.feature}",
                code="feature_not_entitled",
                details={
                    "feature": refused.feature,
                    "plan_code": terms.plan_code,
                    "code": event.code,
                    "property": None
                    if refused.matched_property is None
                    else dict([refused.matched_property]),
                },
            )
        over = excess(self.catalog, terms.plan_code, event.code, properties, overrides)
        if over is not None:
            raise Forbidden(
                f"the plan allows at most {over.limit} for {over.key} ({over.privilege})",
                code="privilege_exceeded",
                details={
                    "feature": over.feature,
                    "privilege": over.privilege,
                    "limit": over.limit,
                    "plan_code": terms.plan_code,
                    "code": event.code,
                    "property": {over.key: properties.get(over.key)},
                },
            )

    async def _fresh_wallet(self, customer: str) -> None:
        """A customer seen for the first time: its wallet is read from Lago (outside any
        lock); afterwards the account is kept fresh by wallet writes, webhooks and the
        meters' reconciliation."""
        async with self.database.engine.connect() as conn:
            account = await accounts.account(conn, customer)
        if account is None or account["wallet_read_at"] is None:
            await self._read_wallet(customer)

    async def _read_wallet(self, customer: str) -> None:
        try:
            await refresh_account(self.database, self.lago, self.catalog, customer)
        except LagoError as exc:
            raise _unavailable() from exc

    # Capture, release, expiry ------------------------------------------------------------

    async def get(self, hold_id: str) -> dict[str, Any]:
        async with self.database.engine.connect() as conn:
            row = await store.by_id(conn, hold_id)
        if row is None:
            raise NotFound("no such hold", code="hold_not_found")
        return shape(row)

    @asynccontextmanager
    async def _locked(
        self, hold_id: str
    ) -> AsyncIterator[tuple[AsyncConnection, dict[str, Any], float]]:
        """The hold, read again under its customer's account lock, in a transaction."""
        current = await self.get(hold_id)
        now = time.time()
        async with self.database.engine.begin() as conn:
            await accounts.lock_account(conn, current["external_customer_id"], now)
            row = await store.by_id(conn, hold_id)
            assert row is not None
            yield conn, row, now

    async def capture(self, hold_id: str, params: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Accept the hold's usage event (final ``properties`` if given) and return the
        reservation; a repeat answers the captured hold."""
        if self.database.is_postgres:
            return await pipelined.capture(
                self.database, self.meters, hold_id, params, self._captured_event, actor
            )
        accepted = False
        async with self._locked(hold_id) as (conn, row, now):
            if row["status"] == CAPTURED:
                return shape(row)
            decisions.check_open(row, now)
            event = self._captured_event(row, params, now)
            accepted = await self._accept(conn, event, actor, now)
            await self._return(conn, row, now)
            units, props = decisions.captured(self.meters.rules[row["code"]], event)
            await store.settle(conn, hold_id, CAPTURED, now, captured_units=units, properties=props)
            row.update(status=CAPTURED, settled_at=now, captured_units=units, properties=props)
            await announce(conn, row, "hold.captured", "holds.capture", actor)
        if accepted:
            self.database.wake(PENDING).set(1)
        self.database.wake(DUE).set()
        return shape(row)

    def _captured_event(
        self, row: Mapping[str, Any], params: Mapping[str, Any], now: float
    ) -> ParsedEvent:
        properties = params.get("properties")
        if properties is None:
            properties = orjson.loads(row["properties"])
        return self._event({**row, "properties": properties}, row["external_subscription_id"], now)

    async def release(self, hold_id: str, actor: str) -> dict[str, Any]:
        """Return the reservation; no usage event. A repeat answers the released hold."""
        if self.database.is_postgres:
            return await pipelined.release(self.database, self.meters, hold_id, actor)
        async with self._locked(hold_id) as (conn, row, now):
            if row["status"] == RELEASED:
                return shape(row)
            decisions.check_open(row, now)
            await self._end(conn, row, RELEASED, now, actor)
        self.database.wake(DUE).set()
        return shape(row)

    async def _end(
        self, conn: AsyncConnection, row: dict[str, Any], status: str, now: float, actor: str
    ) -> None:
        await self._return(conn, row, now)
        await store.settle(conn, row["id"], status, now)
        row.update(status=status, settled_at=now)
        name = "released" if status == RELEASED else "expired"
        await announce(conn, row, f"hold.{name}", f"holds.{name.rstrip('d')}", actor)

    async def _return(self, conn: AsyncConnection, row: Mapping[str, Any], now: float) -> None:
        """Give back what the hold reserved (the caller holds the account's lock)."""
        if row["allowance_units"]:
            key = (row["external_subscription_id"], row["code"], row["period_start"], TOTAL)
            aggregation = self.meters.rules.get(row["code"])
            await meters_store.add_held(
                conn,
                key,
                aggregation.aggregation if aggregation else "count",
                -float(row["allowance_units"]),
                now,
            )
        tokens = accounting.decimal(row["tokens"])
        if tokens:
            account = await accounts.account(conn, row["external_customer_id"])
            held = max(accounting.decimal(account["held_tokens"] if account else 0) - tokens, ZERO)
            await accounts.set_held_tokens(conn, row["external_customer_id"], accounting.text(held))

    async def _accept(
        self, conn: AsyncConnection, event: ParsedEvent, actor: str, now: float
    ) -> bool:
        """The usage event into the outbox and the meters; False when that key was stored
        already (the producer sent it too): it is not metered twice."""
        sub = event.external_subscription_id or ""
        row = OutboxRow(
            sub, event.transaction_id, event.code, event.payload(), event.fingerprint(), 0, actor
        )
        if conn.dialect.name == "postgresql":
            missing = await usage_store.insert_pg(conn, [row], now)
        else:
            missing = await usage_store.insert_sqlite(conn, [row], now)
        if missing:
            return False
        metered = Metered(
            sub, event.transaction_id, event.code, float(event.timestamp), event.properties
        )
        await meters_store.apply(conn, await self.meters.deltas([metered]), now)
        return True

    async def expire_due(self, limit: int = EXPIRY_BATCH) -> int:
        """Release held holds past their ``expires_at`` (as ``expired``); how many."""
        now = time.time()
        async with self.database.engine.connect() as conn:
            due = await store.expired(conn, now, limit)
        done = 0
        for candidate in due:
            async with self.database.engine.begin() as conn:
                await accounts.lock_account(conn, candidate["external_customer_id"], now)
                row = await store.by_id(conn, candidate["id"])
                if row is None or row["status"] != HELD:
                    continue
                await self._end(conn, row, EXPIRED, now, "gateway")
                done += 1
        if done:
            self.database.wake(DUE).set()
        return done


def _unavailable() -> UpstreamUnavailable:
    return UpstreamUnavailable("Lago is unreachable: retry")


async def run_expiry(holds: Holds, stop: asyncio.Event) -> None:
    """Worker job: release holds past their ``expires_at`` (every EXPIRY_POLL_SECONDS)."""
    while not stop.is_set():
        try:
            while await holds.expire_due() >= EXPIRY_BATCH:
                pass
        except Exception as exc:
            log_failure(log, "holds.expiry_failed", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=EXPIRY_POLL_SECONDS)
