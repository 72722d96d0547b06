"""One answer for "may this customer generate?", from the gateway's own meters.

No Lago call on the request path once a customer is known: plan and period come from the
subscription's stored terms, usage from ``usage_meters`` (every accepted event, pending or
forwarded, plus what open holds reserve), the token wallet from ``meter_accounts`` (Lago's
wallet as last read: on the gateway's own wallet writes, Lago's wallet webhooks and the
meters' reconciliation), allowances, token costs and features from the catalog. Only a
subscription or customer the gateway has never seen is read from Lago (once).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.catalog import accounting
from gateway.catalog.entitlements import Overrides, features_of, overrides_from_lago, refusal
from gateway.catalog.schemas import Allowance, Catalog
from gateway.db import Database
from gateway.errors import Conflict, NotFound, ValidationFailed
from gateway.integrations.lago.client import LagoClient
from gateway.logging import get_logger
from gateway.meters import account_store as accounts
from gateway.meters import store as meters_store
from gateway.meters.metering import TOTAL
from gateway.meters.service import Meters, Terms
from gateway.packs import store
from gateway.packs.account import refresh_account
from gateway.packs.grants import next_grant
from gateway.packs.service import all_pages

log = get_logger(__name__)
ACTIVE = "active"
ZERO = Decimal(0)


def _q(value: str) -> str:
    return quote(value, safe="")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


# The answer ----------------------------------------------------------------------------


_UNKNOWN = object()  # the gateway has no terms for the customer's subscription(s) yet


async def _known_subscription(
    conn: AsyncConnection, meters: Meters, customer: str, subscription_id: str | None
) -> Terms | object | None:
    """The subscription the answer is about, from what the gateway knows (``_UNKNOWN``: it
    must learn from Lago first): the one named, else the customer's one active."""
    if subscription_id is not None:
        if not subscription_id.strip():
            raise ValidationFailed(details={"external_subscription_id": ["value_is_invalid"]})
        terms = (await meters.terms([subscription_id])).get(subscription_id)
        if terms is None:
            return _UNKNOWN
        if terms.customer != customer:
            raise NotFound("no such subscription for this customer", code="subscription_not_found")
        return terms
    rows = await meters_store.subscriptions_of(conn, customer)
    if not rows:
        return _UNKNOWN
    active = [row for row in rows if row["status"] == ACTIVE]
    if len(active) > 1:
        raise Conflict(
            "the customer has several active subscriptions: pass external_subscription_id",
            code="several_active_subscriptions",
            details={"external_subscription_id": sorted(s["external_id"] for s in active)},
        )
    if not active:
        return None
    return (await meters.terms([active[0]["external_id"]])).get(active[0]["external_id"])


async def _learn(
    meters: Meters, lago: LagoClient, customer: str, subscription_id: str | None
) -> Terms | None:
    """A subscription or customer seen for the first time, read from Lago."""
    if subscription_id is not None:
        terms = await meters.learn(subscription_id)
        if terms is None or terms.customer != customer:
            raise NotFound("no such subscription for this customer", code="subscription_not_found")
        return terms
    return await _learn_active(meters, lago, customer)


async def _learn_active(meters: Meters, lago: LagoClient, customer: str) -> Terms | None:
    """A customer the gateway has not seen: Lago says who it is and what it subscribes to
    (404 ``customer_not_found`` for a stranger)."""
    await lago.call("GET", f"/customers/{_q(customer)}")
    active = await all_pages(
        lago,
        "/subscriptions",
        "subscriptions",
        {"external_customer_id": customer, "status[]": ACTIVE},
    )
    learned = [await meters.adopt(s, first_sight=True) for s in active]
    found = [terms for terms in learned if terms is not None]
    if len(found) > 1:
        raise Conflict(
            "the customer has several active subscriptions: pass external_subscription_id",
            code="several_active_subscriptions",
            details={"external_subscription_id": sorted(t.row["external_id"] for t in found)},
        )
    return found[0] if found else None


def _usage(
    catalog: Catalog | None,
    terms: Terms | None,
    rows: list[dict[str, Any]],
    available: Decimal,
) -> dict[str, Any]:
    plan_code = terms.plan_code if terms is not None else None
    subscribed = terms is not None
    overrides = _overrides(catalog, terms)
    totals = {r["metric"]: r for r in rows if r["group_key"] == TOTAL}
    costs = accounting.token_costs(catalog)
    metrics = set(catalog.metric_codes if catalog else ()) | set(totals)
    usage: dict[str, Any] = {}
    for metric in sorted(metrics):
        allowance = (
            accounting.allowance(catalog, plan_code, metric)
            if subscribed
            else Allowance(included=0, beyond="tokens")
        )
        entitled = catalog is None or refusal(catalog, plan_code, metric, {}, overrides) is None
        meter = totals.get(metric)
        units = float(meter["units"]) if meter else 0.0
        held = float(meter["held"]) if meter else 0.0
        included = allowance.included if allowance else None
        remaining = None
        if included is not None:
            remaining = _number(max(included - units - held, 0.0))
        usage[metric] = {
            "units": _number(units),
            "held": _number(held),
            "included": included,
            "remaining_included": remaining,
            "beyond_included": allowance.beyond if allowance else None,
            "tokens_per_unit": accounting.text(costs[metric]) if metric in costs else None,
            # A feature the metric needs and the plan lacks (a hold: 403).
            "entitled": entitled,
            "can_generate": None
            if allowance is None
            else entitled and _can_generate(allowance, units + held, available, costs.get(metric)),
            "breakdown": {
                r["group_key"]: _number(float(r["units"]))
                for r in rows
                if r["metric"] == metric and r["group_key"] != TOTAL
            },
        }
    return usage


def _can_generate(
    allowance: Allowance, used: float, available: Decimal, cost: Decimal | None
) -> bool:
    """One more unit now: within the allowance, billed beyond it, or paid from tokens left
    (a hint; a hold is the race-free answer)."""
    if allowance.included is None or used < allowance.included:
        return True
    if allowance.beyond != "tokens":
        return allowance.beyond == "invoice"
    return cost is not None and available >= cost


async def customer_balance(
    database: Database,
    lago: LagoClient,
    meters: Meters,
    catalog: Catalog | None,
    external_customer_id: str,
    external_subscription_id: str | None = None,
) -> dict[str, Any]:
    """The ``balance`` object of ``GET /gateway/customers/{id}/balance``: one connection and
    a few reads for a customer the gateway knows; Lago is asked only on first sight."""
    customer, wanted = external_customer_id, external_subscription_id
    for attempt in range(2):
        async with database.engine.connect() as conn:
            found = await _known_subscription(conn, meters, customer, wanted)
            account = await accounts.account(conn, customer)
            known = found is not _UNKNOWN
            if (known and account is not None and account["wallet_read_at"] is not None) or (
                attempt == 1
            ):
                terms = found if isinstance(found, Terms) else None
                return await _answer(conn, catalog, customer, terms, account)
        if not known:
            await _learn(meters, lago, customer, wanted)
        if account is None or account["wallet_read_at"] is None:
            await refresh_account(database, lago, catalog, customer)
    raise AssertionError("unreachable")


async def _answer(
    conn: AsyncConnection,
    catalog: Catalog | None,
    customer: str,
    terms: Terms | None,
    account: Mapping[str, Any] | None,
) -> dict[str, Any]:
    period = terms.period_of(time.time()) if terms is not None else None
    rows = []
    if terms is not None and period is not None:
        rows = await meters_store.meters_of(conn, terms.row["external_id"], period[0])
    owed = await store.owed_bonus_credits_on(conn, customer)
    return compose(catalog, customer, terms, period, account, rows, owed)


def compose(
    catalog: Catalog | None,
    customer: str,
    terms: Terms | None,
    period: tuple[float, float] | None,
    account: Mapping[str, Any] | None,
    rows: list[dict[str, Any]],
    owed: list[str],
) -> dict[str, Any]:
    """The answer from what was read: terms, period, account, meter rows, owed bonuses."""
    plan_code = terms.plan_code if terms is not None else None
    totals = {r["metric"]: r for r in rows if r["group_key"] == TOTAL}
    spent = accounting.tokens_spent(catalog, plan_code, totals)
    available = accounting.tokens_available(catalog, plan_code, totals, account)
    return {
        "external_customer_id": customer,
        "subscription": None
        if terms is None
        else {"external_id": terms.row["external_id"], "status": terms.row["status"]},
        "plan": None if terms is None else _plan(catalog, terms),
        "period": None if period is None else {"from": _iso(period[0]), "to": _iso(period[1])},
        "usage": _usage(catalog, terms, rows, available),
        "wallet": _wallet(catalog, account, spent, available, owed),
        "features": _features(catalog, terms),
        "next_grant": _next_grant(catalog, plan_code, account),
        "token_costs": {
            name: cost.model_dump(mode="json") for name, cost in catalog.token_costs.items()
        }
        if catalog
        else {},
    }


def _features(catalog: Catalog | None, terms: Terms | None) -> dict[str, Any]:
    """The plan's features and privilege values, with the subscription's overrides."""
    if catalog is None:
        return {}
    plan_code = terms.plan_code if terms is not None else None
    return features_of(catalog, plan_code, _overrides(catalog, terms))


def _overrides(catalog: Catalog | None, terms: Terms | None) -> Overrides | None:
    """The subscription's entitlement overrides, from Lago's list kept with its terms."""
    if catalog is None or terms is None or terms.entitlements is None:
        return None
    return overrides_from_lago(catalog, terms.plan_code, terms.entitlements)


def _next_grant(
    catalog: Catalog | None, plan_code: str | None, account: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The plan's next recurring token grant (the wallet's rule as last read, else the
    catalog's grant, not in Lago yet)."""
    rules = (account or {}).get("wallet_rules")
    wallet = None if not rules else {"recurring_transaction_rules": orjson.loads(rules)}
    return next_grant(catalog, plan_code, wallet, datetime.now(UTC))


def _plan(catalog: Catalog | None, terms: Terms) -> dict[str, Any]:
    known = catalog.plan(terms.plan_code) if catalog else None
    return {
        "code": terms.plan_code,
        "name": known.name if known else None,
        "interval": terms.row["interval"],
        "in_catalog": known is not None,
    }


def _wallet(
    catalog: Catalog | None,
    account: Mapping[str, Any] | None,
    spent: Decimal,
    available: Decimal,
    owed: list[str],
) -> dict[str, Any] | None:
    config = catalog.token_wallet if catalog else None
    if config is None:
        return None
    account = account or {}
    bonus = sum((Decimal(credits) for credits in owed), Decimal(0))
    read_at = account.get("wallet_read_at")
    return {
        "code": config.code,
        "currency": config.currency,
        "lago_id": account.get("lago_wallet_id"),
        "settled_credits": str(account.get("credits") or "0"),
        "pending_credits": str(account.get("pending_credits") or "0"),
        "ongoing_credits": str(account.get("ongoing_credits") or "0"),
        "pending_bonus_credits": accounting.text(bonus),
        "tokens_spent_this_period": accounting.text(spent),
        "held_tokens": str(account.get("held_tokens") or "0"),
        "available_tokens": accounting.text(available),
        "read_at": None if read_at is None else _iso(read_at),
    }
