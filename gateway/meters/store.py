"""The meters' statements: adding events to meters (in the caller's transaction), billing
terms, meter reads and token accounts.

Meter rows are upserted in key order, so concurrent writers lock overlapping rows in one
order and cannot deadlock. On PostgreSQL the ingest fast path adds its events with the CTEs
of ``pg_meter_ctes`` inside its one statement (``gateway.usage.store.acceptance``); every
other writer (the transaction path, SQLite, captures) calls ``apply``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.meters.metering import Delta

_VALUE_KEY = "external_subscription_id, metric, period_start, group_key"
_METER_KEY = _VALUE_KEY + ", shard"
HOLD_SHARD = 0  # holds reserve on shard 0; outbox writers add usage to 1..SHARDS
SHARDS = 16


def writer_shard(pid: int, writer: int) -> int:
    """The meter shard of one outbox writer of one process."""
    return 1 + (pid * 8 + writer) % SHARDS


def _upsert_sql(greatest: str) -> str:
    """One meter row's upsert; ``greatest`` is the dialect's two-argument maximum."""
    return (
        f"INSERT INTO usage_meters ({_METER_KEY}, aggregation, units, events, latest_at, held, "
        "updated_at) VALUES (:s, :m, :p, :g, :sh, :a, :u, :n, :t, 0, :now) "
        f"ON CONFLICT ({_METER_KEY}) DO UPDATE SET "
        "units = CASE usage_meters.aggregation "
        f"WHEN 'max' THEN {greatest}(usage_meters.units, excluded.units) "
        "WHEN 'latest' THEN CASE WHEN excluded.latest_at >= "
        "COALESCE(usage_meters.latest_at, excluded.latest_at) "
        "THEN excluded.units ELSE usage_meters.units END "
        "ELSE usage_meters.units + excluded.units END, "
        "events = usage_meters.events + excluded.events, "
        f"latest_at = {greatest}(COALESCE(usage_meters.latest_at, excluded.latest_at), "
        "excluded.latest_at), updated_at = excluded.updated_at"
    )


_UPSERT = {"postgresql": _upsert_sql("GREATEST"), "sqlite": _upsert_sql("max")}
_NEW_VALUE = text(
    f"INSERT INTO usage_meter_values ({_VALUE_KEY}, value) VALUES (:s, :m, :p, :g, :v) "
    "ON CONFLICT DO NOTHING RETURNING 1"
)

# The PostgreSQL fast path: CTEs over ``%(meters)s`` (``deltas_json``), appended to a
# statement's WITH list; the statement's own rows are all new, so every delta counts.
# ``deltas_json`` sends one record per meter row already summed (``n`` events, ``v`` the
# row's count, sum, max or latest value), except unique counts: one record per value, counted
# by the values the statement inserts (``mv``, ``mn``).
_PG_METER_CTES = (
    "md AS (SELECT * FROM json_to_recordset(%(meters)s::json) AS md(s text, m text, "
    "p float8, g text, a text, n int8, v float8, t float8, q text){gate}), "
    f"mv AS (INSERT INTO usage_meter_values ({_VALUE_KEY}, value) "
    "SELECT DISTINCT s, m, p, g, q FROM md WHERE q IS NOT NULL ORDER BY 1, 2, 3, 4, 5 "
    "ON CONFLICT DO NOTHING RETURNING external_subscription_id AS s, metric AS m, "
    "period_start AS p, group_key AS g), "
    "mn AS (SELECT s, m, p, g, count(*) AS fresh FROM mv GROUP BY s, m, p, g), "
    "mg AS (SELECT s, m, p, g, a, n, CASE a WHEN 'count' THEN n ELSE v END AS v, t "
    "FROM md WHERE q IS NULL UNION ALL "
    "SELECT s, m, p, g, min(a), sum(n), NULL, max(t) FROM md WHERE q IS NOT NULL "
    "GROUP BY s, m, p, g), "
    f"mu AS (INSERT INTO usage_meters ({_METER_KEY}, aggregation, units, events, latest_at, "
    "held, updated_at) SELECT mg.s, mg.m, mg.p, mg.g, %(shard)s, mg.a, "
    "COALESCE(mg.v, mn.fresh, 0), mg.n, mg.t, 0, %(now)s "
    "FROM mg LEFT JOIN mn USING (s, m, p, g) ORDER BY 1, 2, 3, 4, 5 "
    f"ON CONFLICT ({_METER_KEY}) DO UPDATE SET "
    "units = CASE usage_meters.aggregation "
    "WHEN 'max' THEN GREATEST(usage_meters.units, excluded.units) "
    "WHEN 'latest' THEN CASE WHEN excluded.latest_at >= "
    "COALESCE(usage_meters.latest_at, excluded.latest_at) "
    "THEN excluded.units ELSE usage_meters.units END "
    "ELSE usage_meters.units + excluded.units END, "
    "events = usage_meters.events + excluded.events, "
    "latest_at = GREATEST(COALESCE(usage_meters.latest_at, excluded.latest_at), "
    "excluded.latest_at), updated_at = excluded.updated_at RETURNING 1)"
)
PG_METER_CTES = _PG_METER_CTES.replace("{gate}", "")
# The same, counting only when the statement's CTE ``ins`` inserted a row (a capture whose
# event the producer had sent already adds nothing).
PG_METER_CTES_IF_INSERTED = _PG_METER_CTES.replace("{gate}", " WHERE EXISTS (SELECT 1 FROM ins)")


def deltas_json(deltas: Iterable[Delta]) -> str:
    """The ``%(meters)s`` parameter of ``PG_METER_CTES``: the deltas summed per meter row
    first (``n`` events, ``v`` their count, sum, max or latest value, ``t`` the latest
    event's time), so the statement upserts each row from one record; unique-count deltas
    stay one record per value (the database tells which values are new)."""
    rows: dict[tuple[str, str, float, str], dict[str, Any]] = {}
    values: list[dict[str, Any]] = []
    for d in deltas:
        if d.unique is not None:
            values.append(
                {"s": d.external_subscription_id, "m": d.metric, "p": d.period_start,
                 "g": d.group_key, "a": d.aggregation, "n": 1, "v": 1.0, "t": d.at,
                 "q": d.unique}
            )  # fmt: skip
            continue
        key = (d.external_subscription_id, d.metric, d.period_start, d.group_key)
        row = rows.get(key)
        if row is None:
            rows[key] = {"s": key[0], "m": key[1], "p": key[2], "g": key[3], "a": d.aggregation,
                         "n": 1, "v": d.value, "t": d.at, "q": None}  # fmt: skip
            continue
        row["n"] += 1
        if d.aggregation == "sum":
            row["v"] += d.value
        elif d.aggregation == "max":
            row["v"] = max(row["v"], d.value)
        elif d.aggregation == "latest" and d.at >= row["t"]:
            row["v"] = d.value
        row["t"] = max(row["t"], d.at)
    return orjson.dumps([*rows.values(), *values]).decode()


MeterKey = tuple[str, str, float, str]


@dataclass
class _Sum:
    aggregation: str
    events: int = 0
    total: float = 0.0
    top: float | None = None
    last: float = 0.0
    last_at: float | None = None
    fresh: int = 0

    def add(self, delta: Delta) -> None:
        self.events += 1
        self.total += delta.value
        self.top = delta.value if self.top is None else max(self.top, delta.value)
        if self.last_at is None or delta.at >= self.last_at:
            self.last, self.last_at = delta.value, delta.at

    @property
    def units(self) -> float:
        return {
            "count": float(self.events),
            "sum": self.total,
            "max": self.top or 0.0,
            "latest": self.last,
        }.get(self.aggregation, float(self.fresh))


async def apply(
    conn: AsyncConnection, deltas: Sequence[Delta], now: float, shard: int = HOLD_SHARD
) -> None:
    """Add events to their meters' rows of ``shard``, in the caller's transaction."""
    if not deltas:
        return
    sums: dict[MeterKey, _Sum] = {}
    values: set[tuple[MeterKey, str]] = set()
    for d in deltas:
        key = (d.external_subscription_id, d.metric, d.period_start, d.group_key)
        sums.setdefault(key, _Sum(d.aggregation)).add(d)
        if d.unique is not None:
            values.add((key, d.unique))
    for key, value in sorted(values):
        s, m, p, g = key
        inserted = await conn.execute(_NEW_VALUE, {"s": s, "m": m, "p": p, "g": g, "v": value})
        if inserted.first() is not None:
            sums[key].fresh += 1
    upsert = text(_UPSERT[conn.dialect.name])
    for key in sorted(sums):
        s, m, p, g = key
        row = sums[key]
        params = {"s": s, "m": m, "p": p, "g": g, "sh": shard, "a": row.aggregation, "u": row.units}
        await conn.execute(upsert, {**params, "n": row.events, "t": row.last_at, "now": now})


async def meters_of(
    conn: AsyncConnection, external_subscription_id: str, period_start: float
) -> list[dict[str, Any]]:
    """Every meter of a subscription's period (its rows combined over shards)."""
    result = await conn.execute(
        text(
            "SELECT metric, group_key, aggregation, units, events, latest_at, held, updated_at "
            "FROM usage_meters WHERE external_subscription_id = :s AND period_start = :p"
        ),
        {"s": external_subscription_id, "p": period_start},
    )
    return combine(dict(row._mapping) for row in result)


def combine(
    rows: Iterable[dict[str, Any]], key: tuple[str, ...] = ("metric", "group_key")
) -> list[dict[str, Any]]:
    """Meter rows of several shards as one row per ``key``: counts, sums, unique counts,
    events and holds add up; a max is the largest, a latest the value of the latest event."""
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        at = tuple(row[name] for name in key)
        seen = found.get(at)
        if seen is None:
            found[at] = dict(row)
            continue
        aggregation = row.get("aggregation") or seen.get("aggregation")
        if aggregation == "max":
            seen["units"] = max(seen["units"], row["units"])
        elif aggregation == "latest":
            if (row.get("latest_at") or 0) > (seen.get("latest_at") or 0):
                seen["units"] = row["units"]
        else:
            seen["units"] += row["units"]
        for name in ("events", "held"):
            if name in row:
                seen[name] = seen[name] + row[name]
        for name in ("latest_at", "updated_at"):
            if row.get(name) is not None:
                seen[name] = max(seen.get(name) or row[name], row[name])
    return [found[at] for at in sorted(found)]


async def value_seen(conn: AsyncConnection, key: MeterKey, value: str) -> bool:
    """Whether a unique-count meter has counted ``value`` already."""
    s, m, p, g = key
    found = await conn.execute(
        text(
            "SELECT 1 FROM usage_meter_values WHERE external_subscription_id = :s "
            "AND metric = :m AND period_start = :p AND group_key = :g AND value = :v"
        ),
        {"s": s, "m": m, "p": p, "g": g, "v": value},
    )
    return found.first() is not None


# Reserve (negative: return) ``:h`` units on a meter row (``:s :m :p :g :sh``), created at 0.
ADD_HELD = (
    f"INSERT INTO usage_meters ({_METER_KEY}, aggregation, units, events, latest_at, "
    "held, updated_at) VALUES (:s, :m, :p, :g, :sh, :a, 0, 0, NULL, :h, :now) "
    f"ON CONFLICT ({_METER_KEY}) DO UPDATE SET held = usage_meters.held + excluded.held, "
    "updated_at = excluded.updated_at"
)


async def add_held(
    conn: AsyncConnection, key: MeterKey, aggregation: str, held: float, now: float
) -> None:
    """Reserve (or, negative, return) ``held`` units on a meter (its holds' shard),
    creating the row at zero."""
    s, m, p, g = key
    await conn.execute(
        text(ADD_HELD),
        {"s": s, "m": m, "p": p, "g": g, "sh": HOLD_SHARD, "a": aggregation, "h": held, "now": now},
    )


# Billing terms -----------------------------------------------------------------------

TERMS_COLUMNS = (
    "external_id",
    "external_customer_id",
    "plan_code",
    "status",
    "interval",
    "billing_time",
    "bill_charges_monthly",
    "timezone",
    "subscription_at",
    "started_at",
    "ending_at",
    "period_start",
    "period_end",
    "entitlements",
    "learned_at",
)


async def terms_of(conn: AsyncConnection, external_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The stored terms of these subscriptions (those known)."""
    if not external_ids:
        return []
    names = {f"i{n}": value for n, value in enumerate(external_ids)}
    result = await conn.execute(
        text(
            f"SELECT {', '.join(TERMS_COLUMNS)} FROM meter_subscriptions "
            f"WHERE external_id IN ({', '.join(':' + name for name in names)})"
        ),
        names,
    )
    return [dict(row._mapping) for row in result]


async def subscriptions_of(
    conn: AsyncConnection, external_customer_id: str
) -> list[dict[str, Any]]:
    """The stored terms of a customer's subscriptions."""
    result = await conn.execute(
        text(
            f"SELECT {', '.join(TERMS_COLUMNS)} FROM meter_subscriptions "
            "WHERE external_customer_id = :c ORDER BY external_id"
        ),
        {"c": external_customer_id},
    )
    return [dict(row._mapping) for row in result]


async def save_terms(conn: AsyncConnection, terms: dict[str, Any]) -> None:
    """Insert or replace a subscription's terms."""
    columns = ", ".join(TERMS_COLUMNS)
    values = ", ".join(f":{name}" for name in TERMS_COLUMNS)
    updates = ", ".join(f"{name} = excluded.{name}" for name in TERMS_COLUMNS[1:])
    await conn.execute(
        text(
            f"INSERT INTO meter_subscriptions ({columns}) VALUES ({values}) "
            f"ON CONFLICT (external_id) DO UPDATE SET {updates}"
        ),
        {name: terms.get(name) for name in TERMS_COLUMNS},
    )


async def save_entitlements(conn: AsyncConnection, external_id: str, entitlements: str) -> None:
    """A subscription's entitlements as Lago just answered them (JSON)."""
    await conn.execute(
        text("UPDATE meter_subscriptions SET entitlements = :e WHERE external_id = :id"),
        {"e": entitlements, "id": external_id},
    )
