"""Usage and token alerts: ``usage.threshold_reached`` when a subscription's usage of a metric
reaches a percentage of what its plan includes (once per billing period and threshold), and
``tokens.low`` when a customer's tokens available fall below a threshold (once, until they are
back at or above it). Thresholds come from the catalog's gateway-only ``alerts``.

The worker job ``meters.alerts`` finds what changed without adding to ingest's cost: it reads
the outbox rows accepted since its last pass by primary key (``usage_events.id``, no index or
column added), and the token accounts touched since then (holds, wallet reads). On
PostgreSQL ids are drawn before their transactions commit, so a row may become visible behind
a larger id: each pass reads again from the highest id it saw ``REORDER_SECONDS`` earlier
(re-reading is harmless, the alert rows decide). It then reads those subscriptions' meter
rows (``usage_meters``, by primary key) for the current billing period and compares them
with the thresholds.

An alert is raised by inserting its ``meter_alerts`` row (``ON CONFLICT DO NOTHING``) and,
only when the row is new, its relay message and audit line, in one transaction: a restart,
a re-read or a second worker cannot raise it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import text

from gateway.audit.service import entry, record_many
from gateway.catalog.schemas import Catalog
from gateway.db import Database
from gateway.jobs import log_failure
from gateway.logging import get_logger
from gateway.meters.alert_rules import TOKENS, USAGE, token_alerts, tokens_available, usage_alerts
from gateway.meters.alert_store import (
    SCAN_ROWS,
    Changes,
    Raised,
    accepted_since,
    accounts_of,
    accounts_touched,
    newest_event_id,
    raised_of,
    subscriptions_of,
    terms_by_id,
    totals_of,
)
from gateway.meters.service import Terms
from gateway.relay.service import DUE, enqueue_message

log = get_logger(__name__)

ACTOR = "gateway"

POLL_SECONDS = 0.5
REORDER_SECONDS = 2.0  # how far behind the newest id a PostgreSQL pass reads again
ACCOUNT_SKEW_SECONDS = 2.0  # and how far behind its last pass it looks for touched accounts
START_BACKLOG_IDS = 5_000  # outbox rows a freshly started job reads behind the newest
START_BACKLOG_SECONDS = 60.0  # and how far back it looks for touched token accounts

ALERTS_RAISED = Counter(
    "gateway_meter_alerts_raised_total", "Usage and token alerts raised (relay messages)", ["kind"]
)
ALERT_DELAY = Histogram(
    "gateway_meter_alert_delay_seconds",
    "From the newest accepted event of a subscription to its usage alert being raised",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
PASS_SECONDS = Histogram(
    "gateway_meter_alert_pass_seconds",
    "One pass of the alert job",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


# Writes -------------------------------------------------------------------------------

_INSERT = text(
    "INSERT INTO meter_alerts (subject, kind, metric, period_start, threshold, round, value, "
    "message_id, fired_at) VALUES (:subject, :kind, :metric, :period_start, :threshold, "
    ":round, :value, :message_id, :fired_at) ON CONFLICT DO NOTHING RETURNING 1"
)


async def raise_alerts(database: Database, alerts: Sequence[Raised], now: float) -> int:
    """Insert each alert's row and, when it is new, its relay message and audit line, in one
    transaction; how many were new."""
    if not alerts:
        return 0
    new: list[Raised] = []
    async with database.engine.begin() as conn:
        for alert in alerts:
            inserted = await conn.execute(_INSERT, alert.row)
            if inserted.first() is None:
                continue
            await enqueue_message(
                conn,
                message_id=alert.row["message_id"],
                type=alert.type,
                source="gateway",
                data=alert.data,
            )
            new.append(alert)
        if new:
            await record_many(
                conn,
                [
                    entry(
                        actor=ACTOR,
                        action=f"meters.alert.{a.row['kind']}",
                        outcome="success",
                        target=a.row["message_id"],
                        target_ids=a.target_ids,
                        detail=a.data,
                    )
                    for a in new
                ],
            )
    if new:
        database.wake(DUE).set()
    for alert in new:
        ALERTS_RAISED.labels(kind=alert.row["kind"]).inc()
        if alert.accepted_at is not None:
            ALERT_DELAY.observe(max(now - alert.accepted_at, 0.0))
        log.info("meters.alert_raised", type=alert.type, subject=alert.row["subject"])
    return len(new)


async def resolve(database: Database, keys: Sequence[Mapping[str, Any]], now: float) -> None:
    """Token alerts back at or above their threshold: the next fall raises them again."""
    if not keys:
        return
    async with database.engine.begin() as conn:
        for key in keys:
            await conn.execute(
                text(
                    "UPDATE meter_alerts SET resolved_at = :now WHERE subject = :subject "
                    "AND kind = :kind AND metric = :metric AND period_start = :period_start "
                    "AND threshold = :threshold AND round = :round AND resolved_at IS NULL"
                ),
                {**key, "now": now},
            )


# The job ------------------------------------------------------------------------------


class AlertWatch:
    """The alert job's state: how far it has read the outbox, and when it last looked at the
    token accounts. ``catalog`` is read on every pass (the process's catalog)."""

    def __init__(
        self,
        database: Database,
        catalog: Callable[[], Catalog | None],
        *,
        reorder_seconds: float | None = None,
    ) -> None:
        self.database = database
        self.catalog = catalog
        if reorder_seconds is None:
            reorder_seconds = 0.0 if database.is_sqlite else REORDER_SECONDS
        self.reorder_seconds = reorder_seconds
        self.cursor: int | None = None  # every id up to it has been looked at
        self.seen = 0  # the highest id read
        self._marks: deque[tuple[float, int]] = deque()
        self.accounts_since: float | None = None

    def _advance(self, clock: float) -> None:
        """Move the cursor to the highest id read at least ``reorder_seconds`` ago."""
        self._marks.append((clock, self.seen))
        while self._marks and self._marks[0][0] <= clock - self.reorder_seconds:
            self.cursor = max(self.cursor or 0, self._marks.popleft()[1])

    async def changes(self, now: float) -> Changes:
        """Subscriptions with events accepted since the last pass, customers touched since."""
        found = Changes()
        async with self.database.engine.connect() as conn:
            if self.cursor is None:
                self.cursor = max(await newest_event_id(conn) - START_BACKLOG_IDS, 0)
                self.seen = self.cursor
            after = self.cursor
            while True:
                subscriptions, top, rows = await accepted_since(conn, after)
                for sub, at in subscriptions.items():
                    found.subscriptions[sub] = max(found.subscriptions.get(sub, 0.0), at)
                self.seen, after = max(self.seen, top), top
                if rows < SCAN_ROWS:
                    break
            since = self.accounts_since
            self.accounts_since = now
            if since is None:
                since = now - START_BACKLOG_SECONDS
            found.customers = await accounts_touched(conn, since - ACCOUNT_SKEW_SECONDS)
        self._advance(time.monotonic())
        return found

    async def run_pass(self, now: float | None = None) -> int:
        """One pass: what changed, then the alerts it reached; how many were raised."""
        started = time.perf_counter()
        now = time.time() if now is None else now
        catalog = self.catalog()
        changes = await self.changes(now)
        if catalog is None or not (changes.subscriptions or changes.customers):
            return 0
        async with self.database.engine.connect() as conn:
            known = await terms_by_id(conn, list(changes.subscriptions))
        raised = await self._usage(catalog, known, changes.subscriptions, now)
        if catalog.alerts.tokens_below and catalog.token_wallet is not None:
            customers = changes.customers | {t.customer for t in known.values()}
            raised += await self._tokens(catalog, sorted(customers), now)
        PASS_SECONDS.observe(time.perf_counter() - started)
        return raised

    async def _usage(
        self,
        catalog: Catalog,
        known: Mapping[str, Terms],
        accepted: Mapping[str, float],
        now: float,
    ) -> int:
        if not known or not (
            catalog.alerts.usage_percent or any(p.alerts is not None for p in catalog.plans)
        ):
            return 0
        async with self.database.engine.connect() as conn:
            meters = await totals_of(conn, list(known))
            done: dict[str, set[tuple[str, float, float]]] = defaultdict(set)
            for row in await raised_of(conn, USAGE, list(known)):
                done[row["subject"]].add((row["metric"], row["period_start"], row["threshold"]))
        alerts: list[Raised] = []
        for sub, terms in known.items():
            alerts += usage_alerts(
                catalog, terms, meters.get(sub, []), done[sub], now, accepted.get(sub)
            )
        return await raise_alerts(self.database, alerts, now)

    async def _tokens(self, catalog: Catalog, customers: Sequence[str], now: float) -> int:
        if not customers:
            return 0
        async with self.database.engine.connect() as conn:
            accounts = {
                c: a for c, a in (await accounts_of(conn, customers)).items() if a["lago_wallet_id"]
            }
            if not accounts:
                return 0
            subscriptions = await subscriptions_of(conn, list(accounts))
            meters = await totals_of(conn, [str(t.row["external_id"]) for t in subscriptions])
            done: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in await raised_of(conn, TOKENS, list(accounts)):
                done[row["subject"]].append(row)
        by_customer: dict[str, list[Terms]] = defaultdict(list)
        for terms in subscriptions:
            by_customer[terms.customer].append(terms)
        alerts: list[Raised] = []
        resolved: list[dict[str, Any]] = []
        for customer, account in accounts.items():
            available = tokens_available(catalog, account, by_customer[customer], meters, now)
            found, back = token_alerts(catalog, account, available, done[customer], now)
            alerts += found
            resolved += back
        await resolve(self.database, resolved, now)
        return await raise_alerts(self.database, alerts, now)


async def run(watch: AlertWatch, stop: asyncio.Event, poll_seconds: float = POLL_SECONDS) -> None:
    """Worker job ``meters.alerts``: a pass every ``poll_seconds`` until ``stop``."""
    while not stop.is_set():
        try:
            await watch.run_pass()
        except Exception as exc:
            log_failure(log, "meters.alerts_failed", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
