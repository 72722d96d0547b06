"""One answer for "may this customer generate?": plan, period, usage against allowances, tokens.

Usage comes from Lago's current usage of the active subscription; allowances and token
costs from the catalog; credits from the customer's token wallet (settled, pending paid
credits whose invoice is unpaid, and Lago's ongoing balance net of current usage), and
the pack bonuses the gateway owes once those invoices are paid (not in Lago yet).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

from gateway.catalog.schemas import Allowance, Catalog, Plan, TokenWallet
from gateway.db import Database
from gateway.errors import Conflict, NotFound
from gateway.integrations.lago.client import LagoClient
from gateway.packs import store
from gateway.packs.service import all_pages, token_wallet


def _q(value: str) -> str:
    return quote(value, safe="")


async def _subscription(
    lago: LagoClient, customer_id: str, subscription_id: str | None
) -> dict[str, Any] | None:
    if subscription_id is not None:
        body = await lago.call("GET", f"/subscriptions/{_q(subscription_id)}")
        found: dict[str, Any] = body["subscription"]
        if found.get("external_customer_id") != customer_id:
            raise NotFound("no such subscription for this customer", code="subscription_not_found")
        return found
    active = await all_pages(
        lago,
        "/subscriptions",
        "subscriptions",
        {"external_customer_id": customer_id, "status[]": "active"},
    )
    if len(active) > 1:
        raise Conflict(
            "the customer has several active subscriptions: pass external_subscription_id",
            code="several_active_subscriptions",
            details={"external_subscription_id": sorted(s["external_id"] for s in active)},
        )
    return active[0] if active else None


def _number(value: Any) -> int | float:
    number = Decimal(str(value or 0))
    return int(number) if number == number.to_integral_value() else float(number)


async def _pending_credits(lago: LagoClient, wallet_id: str) -> Decimal:
    pending = await all_pages(
        lago,
        f"/wallets/{_q(wallet_id)}/wallet_transactions",
        "wallet_transactions",
        {"status": "pending", "transaction_status": "purchased"},
    )
    return sum((Decimal(str(t.get("credit_amount") or 0)) for t in pending), Decimal(0))


async def _pending_bonus(database: Database, customer_id: str) -> Decimal:
    """Bonus credits of packs bought but not paid yet (granted once their payment settles)."""
    owed = await store.owed_bonus_credits(database, customer_id)
    return sum((Decimal(credits) for credits in owed), Decimal(0))


def _text(credits: Decimal) -> str:
    return format(credits.normalize(), "f") if credits else "0"


async def _wallet(
    lago: LagoClient, database: Database, config: TokenWallet | None, customer_id: str
) -> dict[str, Any] | None:
    if config is None:
        return None
    wallet = await token_wallet(lago, config, customer_id, create=False)
    if wallet is None:
        return {
            "code": config.code,
            "currency": config.currency,
            "lago_id": None,
            "settled_credits": "0",
            "pending_credits": "0",
            "ongoing_credits": "0",
            "pending_bonus_credits": "0",
        }
    pending = await _pending_credits(lago, str(wallet["lago_id"]))
    return {
        "code": config.code,
        "currency": wallet.get("currency"),
        "lago_id": wallet["lago_id"],
        "settled_credits": str(wallet.get("credits_balance") or "0"),
        "pending_credits": _text(pending),
        "ongoing_credits": str(wallet.get("credits_ongoing_balance") or "0"),
        "pending_bonus_credits": _text(await _pending_bonus(database, customer_id)),
    }


def _can_generate(
    allowance: Allowance, used: Decimal, tokens_left: Decimal, cost: int | None
) -> bool:
    """Within the allowance, billed beyond it, or enough tokens left for one more item."""
    if allowance.included is None or used < allowance.included:
        return True
    if allowance.beyond != "tokens":
        return allowance.beyond == "invoice"
    return cost is not None and tokens_left >= cost


def _allowance(plan: Plan | None, metric: str, subscribed: bool) -> Allowance | None:
    """What applies to ``metric``: None when unknown; all from tokens when unsubscribed."""
    if not subscribed:
        return Allowance(included=0, beyond="tokens")
    return plan.allowances.get(metric) if plan else None


def _usage(
    catalog: Catalog | None,
    plan: Plan | None,
    charges: list[dict[str, Any]],
    tokens_left: Decimal,
    subscribed: bool,
) -> dict[str, Any]:
    used = {str(c["billable_metric"]["code"]): c for c in reversed(charges)}
    costs = {c.metric: c.tokens for c in catalog.token_costs.values()} if catalog else {}
    usage: dict[str, Any] = {}
    for metric in sorted((catalog.metric_codes if catalog else set()) | set(used)):
        allowance = _allowance(plan, metric, subscribed)
        charge = used.get(metric) or {}
        units = Decimal(str(charge.get("units") or 0))
        included = allowance.included if allowance else None
        remaining = None if included is None else max(Decimal(included) - units, Decimal(0))
        usage[metric] = {
            "units": _number(units),
            "amount_cents": int(charge.get("amount_cents") or 0),
            "included": included,
            "remaining_included": None if remaining is None else _number(remaining),
            "beyond_included": allowance.beyond if allowance else None,
            "can_generate": None
            if allowance is None
            else _can_generate(allowance, units, tokens_left, costs.get(metric)),
        }
    return usage


def _plan(
    catalog: Catalog | None, subscription: dict[str, Any]
) -> tuple[Plan | None, dict[str, Any]]:
    code = str(subscription.get("plan_code"))
    known = catalog.plan(code) if catalog else None
    lago_plan = subscription.get("plan") or {}
    return known, {
        "code": code,
        "name": known.name if known else lago_plan.get("name"),
        "interval": known.interval if known else lago_plan.get("interval"),
        "in_catalog": known is not None,
    }


async def customer_balance(
    lago: LagoClient,
    database: Database,
    catalog: Catalog | None,
    external_customer_id: str,
    external_subscription_id: str | None = None,
) -> dict[str, Any]:
    """The ``balance`` object of ``GET /gateway/customers/{id}/balance``."""
    config = catalog.token_wallet if catalog else None
    wallet = await _wallet(lago, database, config, external_customer_id)
    if wallet is None:
        await lago.call("GET", f"/customers/{_q(external_customer_id)}")
    subscription = await _subscription(lago, external_customer_id, external_subscription_id)
    plan: Plan | None = None
    plan_info: dict[str, Any] | None = None
    period: dict[str, Any] | None = None
    charges: list[dict[str, Any]] = []
    if subscription is not None:
        plan, plan_info = _plan(catalog, subscription)
        usage = await lago.call(
            "GET",
            f"/customers/{_q(external_customer_id)}/current_usage",
            params={"external_subscription_id": subscription["external_id"]},
        )
        current = usage.get("customer_usage") or {}
        period = {"from": current.get("from_datetime"), "to": current.get("to_datetime")}
        charges = current.get("charges_usage") or []
    tokens_left = Decimal(wallet["ongoing_credits"]) if wallet else Decimal(0)
    return {
        "external_customer_id": external_customer_id,
        "subscription": None
        if subscription is None
        else {"external_id": subscription["external_id"], "status": subscription.get("status")},
        "plan": plan_info,
        "period": period,
        "usage": _usage(catalog, plan, charges, tokens_left, subscription is not None),
        "wallet": wallet,
        "token_costs": {
            name: cost.model_dump(mode="json") for name, cost in catalog.token_costs.items()
        }
        if catalog
        else {},
    }
