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
import hashlib
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import entry, record_many
from gateway.catalog import accounting
from gateway.catalog.schemas import Catalog
from gateway.db import Database
from gateway.jobs import log_failure
from gateway.logging import get_logger
from gateway.meters import store as meters_store
from gateway.meters.metering import TOTAL
from gateway.meters.service import Terms, terms_of
from gateway.relay.service import DUE, enqueue_message, iso

log = get_logger(__name__)

USAGE = "usage"
TOKENS = "tokens"
USAGE_MESSAGE = "usage.threshold_reached"
TOKENS_MESSAGE = "tokens.low"
ACTOR = "gateway"

POLL_SECONDS = 0.5
SCAN_ROWS = 10_000  # outbox rows read per query (a backlog is read in several)
REORDER_SECONDS = 2.0  # how far behind the newest id a PostgreSQL pass reads again
ACCOUNT_SKEW_SECONDS = 2.0  # and how far behind its last pass it looks for touched accounts
START_BACKLOG_IDS = 5_000  # outbox rows a freshly started job reads behind the newest
START_BACKLOG_SECONDS = 60.0  # and how far back it looks for touched token accounts
IN_CHUNK = 500  # values per IN (...) list

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


def message_id(kind: str, *key: Any) -> str:
    """The relay message id of one alert (the same whoever raises it)."""
    digest = hashlib.sha256("\x00".join([kind, *map(str, key)]).encode()).hexdigest()[:32]
    return f"msg_gateway_{kind.replace('.', '_')}_{digest}"


def _number(value: float | Decimal) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _chunks(values: Sequence[str]) -> Iterable[dict[str, str]]:
    for start in range(0, len(values), IN_CHUNK):
        yield {f"v{n}": v for n, v in enumerate(values[start : start + IN_CHUNK])}


def _in(names: Mapping[str, str]) -> str:
    return ", ".join(f":{name}" for name in names)


@dataclass
class Changes:
    """What a pass looks at: subscriptions with newly accepted events (and when the newest
    was accepted), and customers whose token account was touched."""

    subscriptions: dict[str, float] = field(default_factory=dict)
    customers: set[str] = field(default_factory=set)


@dataclass
class Raised:
    """One alert to raise: its row, its message and its audit line."""

    row: dict[str, Any]
    type: str
    data: dict[str, Any]
    target_ids: list[str]
    accepted_at: float | None = None


# Reads --------------------------------------------------------------------------------


async def newest_event_id(conn: AsyncConnection) -> int:
    found = (await conn.execute(text("SELECT max(id) FROM usage_events"))).scalar()
    return int(found or 0)


async def accepted_since(
    conn: AsyncConnection, after: int, limit: int = SCAN_ROWS
) -> tuple[dict[str, float], int, int]:
    """Subscriptions with outbox rows of id above ``after`` (the first ``limit`` rows), with
    the newest acceptance time of each; the highest id read, and how many rows."""
    result = await conn.execute(
        text(
            "SELECT external_subscription_id AS s, max(id) AS top, max(accepted_at) AS at, "
            "count(*) AS n FROM (SELECT id, external_subscription_id, accepted_at "
            "FROM usage_events WHERE id > :after ORDER BY id LIMIT :limit) AS recent "
            "GROUP BY external_subscription_id"
        ),
        {"after": after, "limit": limit},
    )
    found: dict[str, float] = {}
    top, rows = after, 0
    for row in result:
        found[row.s] = float(row.at)
        top = max(top, int(row.top))
        rows += int(row.n)
    return found, top, rows


async def accounts_touched(conn: AsyncConnection, since: float) -> set[str]:
    """Customers whose token account a hold or a wallet read wrote since ``since`` (a scan of
    the small per-customer table; no index is kept for it on the holds' path)."""
    result = await conn.execute(
        text(
            "SELECT external_customer_id FROM meter_accounts "
            "WHERE touched_at >= :since OR wallet_read_at >= :since"
        ),
        {"since": since},
    )
    return {row[0] for row in result}


async def totals_of(
    conn: AsyncConnection, subscriptions: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Every whole-metric meter row of these subscriptions, all periods (a few per metric)."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for names in _chunks(sorted(set(subscriptions))):
        result = await conn.execute(
            text(
                "SELECT external_subscription_id AS s, metric, period_start, units, held "
                f"FROM usage_meters WHERE external_subscription_id IN ({_in(names)}) "
                "AND group_key = :total"
            ),
            {**names, "total": TOTAL},
        )
        for row in result:
            found[row.s].append(dict(row._mapping))
    return found


async def raised_of(
    conn: AsyncConnection, kind: str, subjects: Sequence[str]
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for names in _chunks(sorted(set(subjects))):
        result = await conn.execute(
            text(
                "SELECT subject, metric, period_start, threshold, round, resolved_at "
                f"FROM meter_alerts WHERE subject IN ({_in(names)}) AND kind = :kind"
            ),
            {**names, "kind": kind},
        )
        found += [dict(row._mapping) for row in result]
    return found


async def accounts_of(conn: AsyncConnection, customers: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for names in _chunks(sorted(set(customers))):
        result = await conn.execute(
            text(
                f"SELECT {meters_store.ACCOUNT_COLUMNS} FROM meter_accounts "
                f"WHERE external_customer_id IN ({_in(names)})"
            ),
            names,
        )
        for row in result:
            found[row.external_customer_id] = dict(row._mapping)
    return found


async def terms_by_id(conn: AsyncConnection, subscriptions: Sequence[str]) -> dict[str, Terms]:
    """The stored terms of these subscriptions (those known), read now: a plan change is
    seen at once."""
    found: dict[str, Terms] = {}
    for names in _chunks(sorted(set(subscriptions))):
        for row in await meters_store.terms_of(conn, list(names.values())):
            found[row["external_id"]] = terms_of(row)
    return found


async def subscriptions_of(conn: AsyncConnection, customers: Sequence[str]) -> list[Terms]:
    """The stored terms of these customers' subscriptions."""
    found: list[Terms] = []
    for names in _chunks(sorted(set(customers))):
        result = await conn.execute(
            text(
                f"SELECT {', '.join(meters_store.TERMS_COLUMNS)} FROM meter_subscriptions "
                f"WHERE external_customer_id IN ({_in(names)})"
            ),
            names,
        )
        found += [terms_of(dict(row._mapping)) for row in result]
    return found


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


# Decisions (pure) ---------------------------------------------------------------------


def usage_alerts(
    catalog: Catalog,
    terms: Terms,
    meters: Sequence[Mapping[str, Any]],
    raised: set[tuple[str, float, float]],
    now: float,
    accepted_at: float | None = None,
) -> list[Raised]:
    """The usage thresholds a subscription's current period reached and has not raised yet
    (``raised``: its (metric, period_start, threshold) already raised)."""
    period = terms.period_of(now)
    if period is None or not terms.active:
        return []
    plan = catalog.plan(terms.plan_code)
    if plan is None:
        return []
    subscription = str(terms.row["external_id"])
    found: list[Raised] = []
    for meter in meters:
        if meter["period_start"] != period[0]:
            continue
        metric = str(meter["metric"])
        allowance = plan.allowances.get(metric)
        if allowance is None or not allowance.included:
            continue
        units = float(meter["units"])
        for percent in catalog.alerts.usage_thresholds(plan, metric):
            if (metric, period[0], float(percent)) in raised:
                continue
            if units * 100 < allowance.included * percent:
                continue
            data = {
                "external_subscription_id": subscription,
                "external_customer_id": terms.customer,
                "plan_code": terms.plan_code,
                "metric": metric,
                "threshold_percent": percent,
                "units": _number(units),
                "included": allowance.included,
                "period_started_at": iso(period[0]),
                "period_ending_at": iso(period[1]),
            }
            key = (subscription, metric, period[0], percent)
            row = {
                "subject": subscription,
                "kind": USAGE,
                "metric": metric,
                "period_start": period[0],
                "threshold": float(percent),
                "round": 0,
                "value": str(_number(units)),
                "message_id": message_id(USAGE_MESSAGE, *key),
                "fired_at": now,
            }
            found.append(Raised(row, USAGE_MESSAGE, data, [subscription], accepted_at))
    return found


def tokens_available(
    catalog: Catalog,
    account: Mapping[str, Any],
    subscriptions: Sequence[Terms],
    meters: Mapping[str, Sequence[Mapping[str, Any]]],
    now: float,
) -> Decimal:
    """A customer's tokens left: the wallet less what holds keep (``accounting``), less what
    each active subscription's current period spent beyond its allowances."""
    available = accounting.tokens_available(catalog, None, {}, account)
    for terms in subscriptions:
        period = terms.period_of(now)
        if period is None or not terms.active:
            continue
        totals = {
            str(m["metric"]): m
            for m in meters.get(str(terms.row["external_id"]), [])
            if m["period_start"] == period[0]
        }
        available -= accounting.tokens_spent(catalog, terms.plan_code, totals)
    return available


def token_alerts(
    catalog: Catalog,
    account: Mapping[str, Any],
    available: Decimal,
    raised: Sequence[Mapping[str, Any]],
    now: float,
) -> tuple[list[Raised], list[dict[str, Any]]]:
    """The ``tokens_below`` thresholds the customer fell below and has not raised since they
    were last resolved, and the raised ones now resolved (back at or above)."""
    customer = str(account["external_customer_id"])
    latest: dict[float, Mapping[str, Any]] = {}
    for row in raised:
        known = latest.get(row["threshold"])
        if known is None or row["round"] > known["round"]:
            latest[float(row["threshold"])] = row
    found: list[Raised] = []
    resolved: list[dict[str, Any]] = []
    for threshold in catalog.alerts.tokens_below:
        last = latest.get(float(threshold))
        key = {
            "subject": customer,
            "kind": TOKENS,
            "metric": "",
            "period_start": 0.0,
            "threshold": float(threshold),
        }
        if available >= threshold:
            if last is not None and last["resolved_at"] is None:
                resolved.append({**key, "round": last["round"]})
            continue
        if last is not None and last["resolved_at"] is None:
            continue
        round_ = 0 if last is None else int(last["round"]) + 1
        data = {
            "external_customer_id": customer,
            "tokens_available": accounting.text(available),
            "threshold": threshold,
            "credits": str(account["credits"]),
            "held_tokens": str(account["held_tokens"]),
        }
        row = {
            **key,
            "round": round_,
            "value": accounting.text(available),
            "message_id": message_id(TOKENS_MESSAGE, customer, threshold, round_),
            "fired_at": now,
        }
        found.append(Raised(row, TOKENS_MESSAGE, data, [customer]))
    return found, resolved


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
