"""The alert job's reads: outbox rows accepted since a pass, token accounts touched, meter
rows, raised alerts, accounts and terms (``alerts`` decides and raises)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.meters import account_store as accounts
from gateway.meters import store as meters_store
from gateway.meters.metering import TOTAL
from gateway.meters.service import Terms, terms_of

IN_CHUNK = 500  # values per IN (...) list
SCAN_ROWS = 10_000  # outbox rows read per query (a backlog is read in several)


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
                "SELECT external_subscription_id AS s, metric, period_start, aggregation, "
                "units, held, latest_at FROM usage_meters "
                f"WHERE external_subscription_id IN ({_in(names)}) AND group_key = :total"
            ),
            {**names, "total": TOTAL},
        )
        key = ("s", "metric", "period_start")
        for row in meters_store.combine((dict(r._mapping) for r in result), key):
            found[row["s"]].append(row)
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
                f"SELECT {accounts.ACCOUNT_COLUMNS} FROM meter_accounts "
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
