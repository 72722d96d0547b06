"""Everything a balance answer reads, in one PostgreSQL statement on a direct connection.

The customer's stored subscription terms, its token account, the meters of the subscription
asked about (the one named, else the active one) in the billing period its terms last
recorded, and the bonus credits its unpaid packs owe: one round trip, as JSON built by
PostgreSQL. A subscription whose recorded period is no longer the current one has its
meters read with a second statement (``meters_at``).

Anything else (SQLite, a customer or subscription not known yet, a wallet never read,
several active subscriptions) is answered by ``balance.customer_balance``, which reads
through SQLAlchemy and learns from Lago.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg

from gateway.catalog.schemas import Catalog
from gateway.meters.account_store import ACCOUNT_COLUMNS
from gateway.meters.service import Meters, terms_of
from gateway.meters.store import TERMS_COLUMNS, combine
from gateway.packs import balance
from gateway.packs.models import AWAITING_PAYMENT

_METER_COLUMNS = "metric, group_key, aggregation, units, events, latest_at, held, updated_at"

_SNAPSHOT = f"""
WITH subs AS (
  SELECT {", ".join(TERMS_COLUMNS)} FROM meter_subscriptions
  WHERE external_customer_id = %(c)s
), chosen AS (
  SELECT external_id, period_start FROM subs
  WHERE CASE WHEN %(s)s::text IS NULL THEN status = 'active' ELSE external_id = %(s)s END
)
SELECT
  (SELECT coalesce(json_agg(subs ORDER BY external_id), '[]') FROM subs),
  (SELECT row_to_json(a) FROM (
     SELECT {ACCOUNT_COLUMNS} FROM meter_accounts WHERE external_customer_id = %(c)s) a),
  (SELECT coalesce(json_agg(m), '[]') FROM (
     SELECT u.external_subscription_id, u.period_start, {_METER_COLUMNS.replace(", ", ", u.")}
     FROM usage_meters u JOIN chosen ON u.external_subscription_id = chosen.external_id
       AND u.period_start = chosen.period_start) m),
  (SELECT coalesce(json_agg(bonus_credits), '[]') FROM pack_purchases
   WHERE external_customer_id = %(c)s AND bonus_status = %(awaiting)s)
"""

_METERS_AT = (
    f"SELECT u.{_METER_COLUMNS.replace(', ', ', u.')} FROM usage_meters u "
    "WHERE external_subscription_id = %s AND period_start = %s"
)


@dataclass(frozen=True)
class Snapshot:
    """What the statement found: terms rows, the account (or None), meter rows of the chosen
    subscription's recorded period (shards not combined), owed bonus credits."""

    subscriptions: list[dict[str, Any]]
    account: dict[str, Any] | None
    meters: list[dict[str, Any]]
    owed: list[str]


async def read(
    conn: psycopg.AsyncConnection[Any], customer: str, subscription: str | None
) -> Snapshot:
    params = {"c": customer, "s": subscription, "awaiting": AWAITING_PAYMENT}
    cursor = await conn.execute(_SNAPSHOT, params)
    row = await cursor.fetchone()
    assert row is not None
    subscriptions, account, meters, owed = row  # json: parsed by psycopg (orjson)
    return Snapshot(subscriptions, account, meters, [str(credits) for credits in owed if credits])


async def meters_at(
    conn: psycopg.AsyncConnection[Any], subscription: str, period_start: float
) -> list[dict[str, Any]]:
    """A subscription's meters of one period, shards combined."""
    cursor = await conn.execute(_METERS_AT, (subscription, period_start))
    names = [column.name for column in cursor.description or ()]
    return combine(dict(zip(names, values, strict=True)) for values in await cursor.fetchall())


async def customer_balance(
    meters: Meters,
    catalog: Catalog | None,
    customer: str,
    subscription: str | None = None,
) -> dict[str, Any]:
    """``balance.customer_balance``, in one statement when it can be."""
    if meters.database.is_postgres:
        found = await _fast(meters, catalog, customer, subscription)
        if found is not None:
            return found
    return await balance.customer_balance(
        meters.database, meters.lago, meters, catalog, customer, subscription
    )


async def _fast(
    meters: Meters, catalog: Catalog | None, customer: str, subscription: str | None
) -> dict[str, Any] | None:
    """The answer from the snapshot, or None when the general path must give it."""
    if subscription is not None and not subscription.strip():
        return None
    async with meters.database.direct() as conn:
        snap = await read(conn, customer, subscription)
        account = snap.account
        if account is None or account.get("wallet_read_at") is None or not snap.subscriptions:
            return None
        if subscription is None:
            chosen = [row for row in snap.subscriptions if row["status"] == balance.ACTIVE]
        else:
            chosen = [row for row in snap.subscriptions if row["external_id"] == subscription]
            if not chosen:
                return None
        if len(chosen) > 1:
            return None
        terms = terms_of(chosen[0]) if chosen else None
        period = terms.period_of(time.time()) if terms is not None else None
        rows: list[dict[str, Any]] = []
        if terms is not None and period is not None:
            if period[0] == terms.row["period_start"]:
                rows = combine(snap.meters)
            else:
                rows = await meters_at(conn, terms.row["external_id"], period[0])
    return balance.compose(catalog, customer, terms, period, account, rows, snap.owed)
