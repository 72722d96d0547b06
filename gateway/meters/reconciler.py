"""Reconciliation: the meters agree with Lago, which bills.

Every pass (worker job ``meters.reconciler``, every ``GATEWAY_METERS_RECONCILE_SECONDS``)
takes the active subscriptions whose meters were checked longest ago and, for each, compares
Lago's current usage (``GET /customers/{id}/current_usage``) with the meters of the same
period less the events Lago does not have yet (still pending in the outbox):

    expected in Lago = meter units - units of the subscription's pending events

Counts and sums compare that way; a max, latest or unique count only when nothing of the
metric is pending. A difference is a drift only when the next pass sees the same one (an
event forwarded between the two reads is in flight, not drift). A drift is logged, counted
(``gateway_meter_drift_total``) and corrected toward Lago: the meter becomes Lago's units
plus the pending ones. Lago's period replaces the stored one, so a subscription whose terms
were learned late, or whose events reached Lago around the gateway, is seeded from Lago.

A subscription learned from Lago on first sight (``Meters.adopt``: a hold, a balance read or
a webhook named one the gateway had not seen) is seeded at once (``seed``): its events
accepted before were not metered, so a difference then is history, not drift in flight, and
is corrected without waiting for a second pass.

While the outbox holds a backlog (more than ``MAX_PENDING`` events), passes compare nothing:
Lago is behind by design then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import Database
from gateway.integrations.lago.client import LagoApiError, LagoClient, LagoError
from gateway.jobs import log_failure
from gateway.logging import get_logger
from gateway.meters import store
from gateway.meters.metering import TOTAL, MeterRule, event_value
from gateway.meters.service import Meters
from gateway.meters.store import HOLD_SHARD

log = get_logger(__name__)
MAX_PENDING = 10_000
BATCH = 50
EPSILON = 1e-6

METER_DRIFT = Counter(
    "gateway_meter_drift_total",
    "Meters found to differ from Lago's current usage (twice in a row) and corrected",
    ["metric"],
)
METER_DRIFT_UNITS = Gauge(
    "gateway_meter_drift_units", "The last drift corrected (Lago minus the meter)", ["metric"]
)
METERS_CHECKED = Counter("gateway_meter_checks_total", "Meter comparisons with Lago")


def _moment(value: Any) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class Reconciler:
    """Compares meters with Lago; remembers a difference until the next pass confirms it."""

    def __init__(self, meters: Meters, lago: LagoClient) -> None:
        self.meters = meters
        self.lago = lago
        self.database: Database = meters.database
        self._seen: dict[tuple[str, str, float], float] = {}  # candidate drifts
        self._cursor = ""

    async def run_once(self, limit: int = BATCH) -> dict[str, int]:
        """One pass over up to ``limit`` active subscriptions; counts of what it did."""
        done = {"checked": 0, "drift": 0, "skipped": 0}
        async with self.database.engine.connect() as conn:
            if await _pending_total(conn) > MAX_PENDING:
                return done
            subscriptions = await _active_after(conn, self._cursor, limit)
        self._cursor = subscriptions[-1]["external_id"] if len(subscriptions) == limit else ""
        for terms in subscriptions:
            try:
                drift = await self.check(terms)
            except LagoApiError as exc:
                if exc.status == 404:  # gone from Lago: it is no longer active
                    await self._mark(terms["external_id"], "terminated")
                    continue
                raise
            done["checked"] += 1
            done["drift"] += drift
        return done

    async def seed(self, terms: Mapping[str, Any]) -> None:
        """Set a subscription learned on first sight to Lago's usage plus its pending events
        (``Meters.seed``); Lago unreachable: the passes do it later."""
        try:
            await self.check(terms, confirm=False)
        except LagoError as exc:
            log.warning("meters.seed_failed", error=type(exc).__name__)

    async def check(self, terms: Mapping[str, Any], *, confirm: bool = True) -> int:
        """Compare one subscription's meters with Lago; how many drifts were corrected
        (``confirm``: only a difference the previous pass saw too)."""
        subscription, customer = str(terms["external_id"]), str(terms["external_customer_id"])
        usage = await self.lago.call(
            "GET",
            f"/customers/{quote(customer, safe='')}/current_usage",
            params={"external_subscription_id": subscription},
        )
        current = usage.get("customer_usage") or {}
        start = _moment(current.get("from_datetime"))
        end = _moment(current.get("to_datetime"))
        if start is None or end is None:
            return 0
        await self._learn_period(subscription, start, end)
        lago_units = {
            str(charge["billable_metric"]["code"]): float(charge.get("units") or 0)
            for charge in current.get("charges_usage") or []
        }
        corrected = 0
        async with self.database.engine.begin() as conn:
            pending = await _pending_of(conn, subscription, start, end)
            rows = await store.meters_of(conn, subscription, start)
            totals = {r["metric"]: r for r in rows if r["group_key"] == TOTAL}
            for metric, rule in self.meters.rules.items():
                if metric not in lago_units and metric not in totals:
                    continue
                METERS_CHECKED.inc()
                fix = self._judge(
                    (subscription, metric, start),
                    rule,
                    totals.get(metric),
                    lago_units.get(metric, 0.0),
                    pending.get(metric, []),
                    confirm,
                )
                if fix is not None:
                    await _set_units(conn, subscription, metric, start, rule, fix)
                    corrected += 1
        return corrected

    def _judge(
        self,
        key: tuple[str, str, float],
        rule: MeterRule,
        meter: Mapping[str, Any] | None,
        lago: float,
        pending: list[dict[str, Any]],
        confirm: bool = True,
    ) -> float | None:
        """The units the meter should hold, when a confirmed drift says so (or, not
        ``confirm``, any difference)."""
        subscription, metric, _ = key
        units = float(meter["units"]) if meter else 0.0
        if rule.aggregation in ("count", "sum"):
            pending_units = sum(event_value(rule, p)[0] for p in pending)
            difference = lago - (units - pending_units)
            target = lago + pending_units
        elif pending:
            self._seen.pop(key, None)
            return None
        else:
            difference = lago - units
            target = lago
        if abs(difference) <= EPSILON:
            self._seen.pop(key, None)
            return None
        if not confirm:  # a first sight's history: seeded, not drift
            log.info("meters.seeded", subscription=subscription, metric=metric, units=target)
            return target
        seen = self._seen.get(key)
        if seen is None or abs(seen - difference) > EPSILON:
            self._seen[key] = difference  # first sight: in flight, or drift? Next pass says.
            return None
        self._seen.pop(key, None)
        METER_DRIFT.labels(metric=metric).inc()
        METER_DRIFT_UNITS.labels(metric=metric).set(difference)
        log.warning(
            "meters.drift_corrected",
            subscription=subscription,
            metric=metric,
            meter=units,
            lago=lago,
            difference=difference,
        )
        return target

    async def _learn_period(self, subscription: str, start: float, end: float) -> None:
        async with self.database.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE meter_subscriptions SET period_start = :s, period_end = :e "
                    "WHERE external_id = :id AND (period_start IS NULL OR period_start <> :s "
                    "OR period_end <> :e)"
                ),
                {"s": start, "e": end, "id": subscription},
            )
        self.meters.forget(subscription)

    async def _mark(self, subscription: str, status: str) -> None:
        async with self.database.engine.begin() as conn:
            await conn.execute(
                text("UPDATE meter_subscriptions SET status = :st WHERE external_id = :id"),
                {"st": status, "id": subscription},
            )
        self.meters.forget(subscription)


async def _pending_total(conn: AsyncConnection) -> int:
    result = await conn.execute(text("SELECT count(*) FROM usage_events WHERE status = 'pending'"))
    return int(result.scalar() or 0)


async def _active_after(conn: AsyncConnection, after: str, limit: int) -> list[dict[str, Any]]:
    result = await conn.execute(
        text(
            "SELECT external_id, external_customer_id FROM meter_subscriptions "
            "WHERE status = 'active' AND external_id > :after ORDER BY external_id LIMIT :n"
        ),
        {"after": after, "n": limit},
    )
    return [dict(row._mapping) for row in result]


async def _pending_of(
    conn: AsyncConnection, subscription: str, start: float, end: float
) -> dict[str, list[dict[str, Any]]]:
    """Properties of the subscription's pending events in the period, by metric."""
    result = await conn.execute(
        text(
            "SELECT code, payload FROM usage_events "
            "WHERE status = 'pending' AND external_subscription_id = :s"
        ),
        {"s": subscription},
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for code, payload in result:
        event = orjson.loads(payload)
        if start <= float(event.get("timestamp") or 0) <= end + 1:
            found.setdefault(code, []).append(event.get("properties") or {})
    return found


async def _set_units(
    conn: AsyncConnection,
    subscription: str,
    metric: str,
    start: float,
    rule: MeterRule,
    units: float,
) -> None:
    """Put the whole-metric meter at ``units``, keeping what holds reserve. Counts, sums
    and unique counts add up over shards: shard 0 takes what the others do not hold (their
    rows locked meanwhile); a max or latest is ``units`` on every shard."""
    key = {"s": subscription, "m": metric, "p": start, "g": TOTAL}
    where = "external_subscription_id = :s AND metric = :m AND period_start = :p AND group_key = :g"
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    others = await conn.execute(
        text(f"SELECT units FROM usage_meters WHERE {where} AND shard <> :zero{lock}"),
        {**key, "zero": HOLD_SHARD},
    )
    additive = rule.aggregation in ("count", "sum", "unique")
    rest = sum(float(row[0]) for row in others) if additive else 0.0
    now = time.time()
    if not additive:
        await conn.execute(
            text(f"UPDATE usage_meters SET units = :u, updated_at = :now WHERE {where}"),
            {**key, "u": units, "now": now},
        )
    await conn.execute(
        text(
            "INSERT INTO usage_meters (external_subscription_id, metric, period_start, group_key, "
            "shard, aggregation, units, events, latest_at, held, updated_at) "
            "VALUES (:s, :m, :p, :g, :zero, :a, :u, 0, NULL, 0, :now) "
            "ON CONFLICT (external_subscription_id, metric, period_start, group_key, shard) "
            "DO UPDATE SET units = excluded.units, updated_at = excluded.updated_at"
        ),
        {**key, "zero": HOLD_SHARD, "a": rule.aggregation, "u": units - rest, "now": now},
    )


async def run(
    reconciler: Reconciler,
    refresh_stale: Callable[[], Any],
    interval: float,
    stop: asyncio.Event,
) -> None:
    """Worker job: a pass every ``interval`` seconds (and stale wallets read again)."""
    while not stop.is_set():
        try:
            await reconciler.run_once()
            await refresh_stale()
        except Exception as exc:
            log_failure(log, "meters.reconcile_failed", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
