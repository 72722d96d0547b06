"""Recurring token grants: a plan's ``token_grant`` becomes a recurring transaction rule of
Lago's on each subscriber's token wallet, so Lago grants the tokens and stays the ledger.

``sync_grants`` makes a customer's token wallet carry exactly the rule its plan calls for
(created with the wallet if needed, updated in place, removed when the plan grants nothing).
The gateway's rule is the one whose ``transaction_metadata`` holds the key ``gateway_grant``;
Lago keeps one rule per wallet and a wallet update replaces them all, so a wallet holding a
rule someone made in Lago is left alone (``conflict``). A new rule starts one interval after
it is made (its ``started_at``): Lago then grants on that anniversary, in the customer's time
zone. ``packs.grants`` (worker job, every ``GATEWAY_GRANTS_SYNC_SECONDS``) syncs every
customer with an active subscription, and those whose subscription ended lately.
``next_grant`` says what the next grant is and when.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from gateway.catalog.schemas import Catalog, TokenGrant
from gateway.db import utcnow
from gateway.integrations.lago.client import LagoClient
from gateway.jobs import log_failure
from gateway.logging import get_logger
from gateway.packs.service import all_pages, token_wallet
from gateway.runtime import Runtime

log = get_logger(__name__)
GRANT_KEY = "gateway_grant"
# Customers whose subscription ended within this window lose their grant (the job does not
# list every terminated subscription ever).
ENDED_WINDOW = timedelta(days=7)
_MONTHS = {"monthly": 1, "quarterly": 3, "semiannual": 6, "yearly": 12}
_PER = {"weekly": "week", "monthly": "month", "quarterly": "quarter",
        "semiannual": "half-year", "yearly": "year"}  # fmt: skip

Outcome = Literal["created", "updated", "removed", "unchanged", "conflict", "no_wallet"]


@dataclass(frozen=True)
class GrantSync:
    """What one sync did: ``outcome``, the wallet, and the gateway's rule as Lago shows it
    afterwards (None when there is none)."""

    external_customer_id: str
    plan_code: str | None
    outcome: Outcome
    lago_wallet_id: str | None = None
    rule: dict[str, Any] | None = None


def is_gateway_rule(rule: dict[str, Any]) -> bool:
    """Whether a recurring transaction rule is the gateway's (its metadata has ``GRANT_KEY``)."""
    return any(m.get("key") == GRANT_KEY for m in rule.get("transaction_metadata") or [])


def grant_name(catalog: Catalog, plan_code: str, grant: TokenGrant) -> str:
    """The grant transactions' name: the catalog's, else "<plan name>: N tokens a <period>"."""
    if grant.name:
        return grant.name
    plan = catalog.plan(plan_code)
    return f"{plan.name if plan else plan_code}: {grant.tokens} tokens a {_PER[grant.interval]}"


def _wanted(catalog: Catalog, plan_code: str, grant: TokenGrant) -> dict[str, Any]:
    """The rule's fields the gateway sets (and compares)."""
    return {
        "trigger": "interval",
        "method": "fixed",
        "interval": grant.interval,
        "paid_credits": "0",
        "granted_credits": str(grant.tokens),
        "transaction_name": grant_name(catalog, plan_code, grant),
        "transaction_metadata": [{"key": GRANT_KEY, "value": plan_code}],
    }


def _same(rule: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        have = rule.get(key)
        if key.endswith("_credits"):
            if have is None or Decimal(str(have)) != Decimal(value):
                return False
        elif have != value:
            return False
    return True


async def _put_rules(lago: LagoClient, wallet_id: str, rules: list[dict[str, Any]]) -> Any:
    body = {"wallet": {"recurring_transaction_rules": rules}}
    answer = await lago.call("PUT", f"/wallets/{quote(wallet_id, safe='')}", json=body)
    return answer["wallet"]


async def sync_grants(
    lago: LagoClient, catalog: Catalog, external_customer_id: str, plan_code: str | None
) -> GrantSync:
    """Make the customer's token wallet carry exactly the rule ``plan_code``'s grant calls
    for (``plan_code`` None: no active plan, so no grant). Idempotent; the wallet is created
    only when there is a grant to carry."""
    grant = catalog.token_grant(plan_code)
    done: dict[str, Any] = {"external_customer_id": external_customer_id, "plan_code": plan_code}
    if catalog.token_wallet is None:
        return GrantSync(**done, outcome="no_wallet")
    wallet = await token_wallet(
        lago, catalog.token_wallet, external_customer_id, create=grant is not None
    )
    if wallet is None:
        return GrantSync(**done, outcome="no_wallet")
    wallet_id = str(wallet["lago_id"])
    done["lago_wallet_id"] = wallet_id
    rules = [
        r for r in wallet.get("recurring_transaction_rules") or [] if r.get("status") == "active"
    ]
    ours = next((r for r in rules if is_gateway_rule(r)), None)
    if any(not is_gateway_rule(r) for r in rules):
        log.warning("packs.grants.conflict", external_customer_id=external_customer_id,
                    lago_wallet_id=wallet_id, plan_code=plan_code)  # fmt: skip
        return GrantSync(**done, outcome="conflict", rule=ours)
    if grant is None or plan_code is None:
        if ours is None:
            return GrantSync(**done, outcome="unchanged")
        await _put_rules(lago, wallet_id, [])
        log.info("packs.grants.removed", external_customer_id=external_customer_id,
                 lago_wallet_id=wallet_id)  # fmt: skip
        return GrantSync(**done, outcome="removed")
    wanted = _wanted(catalog, plan_code, grant)
    if ours is not None and _same(ours, wanted):
        return GrantSync(**done, outcome="unchanged", rule=ours)
    if ours is not None:
        payload = {"lago_id": ours["lago_id"], **wanted}
        outcome: Outcome = "updated"
    else:
        starts = _step(utcnow(), grant.interval, 1)
        payload = {**wanted, "started_at": _iso(starts)}
        outcome = "created"
    updated = await _put_rules(lago, wallet_id, [payload])
    rule = next((r for r in updated.get("recurring_transaction_rules") or []
                 if is_gateway_rule(r)), None)  # fmt: skip
    log.info(f"packs.grants.{outcome}", external_customer_id=external_customer_id,
             lago_wallet_id=wallet_id, plan_code=plan_code)  # fmt: skip
    return GrantSync(**done, outcome=outcome, rule=rule)


def _granting_plan(catalog: Catalog, subscriptions: list[dict[str, Any]]) -> str | None:
    """Of a customer's active subscriptions, the plan whose grant applies: the most recently
    started one that grants tokens."""
    granting = [s for s in subscriptions if catalog.token_grant(s.get("plan_code"))]
    if not granting:
        return None
    latest = max(granting, key=lambda s: str(s.get("started_at") or s.get("created_at") or ""))
    return str(latest["plan_code"])


async def sync_customer(lago: LagoClient, catalog: Catalog, external_customer_id: str) -> GrantSync:
    """``sync_grants`` with the plan of the customer's active subscriptions, read from Lago
    (for the subscription create/update path: call it after the change)."""
    active = await all_pages(
        lago,
        "/subscriptions",
        "subscriptions",
        {"external_customer_id": external_customer_id, "status[]": "active"},
    )
    plan_code = _granting_plan(catalog, active)
    return await sync_grants(lago, catalog, external_customer_id, plan_code)


def _ended_lately(subscription: dict[str, Any], now: datetime) -> bool:
    ended = subscription.get("terminated_at")
    if not ended:
        return False
    return _parse(str(ended)) >= now - ENDED_WINDOW


async def run_once(lago: LagoClient, catalog: Catalog | None) -> dict[str, int]:
    """One pass: every customer with an active subscription gets its plan's grant; one whose
    subscriptions ended within ``ENDED_WINDOW`` (and has none active) loses it."""
    if catalog is None or catalog.token_wallet is None:
        return {}
    active = await all_pages(lago, "/subscriptions", "subscriptions", {"status[]": "active"})
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for subscription in active:
        by_customer.setdefault(str(subscription["external_customer_id"]), []).append(subscription)
    now = utcnow()
    ended = await all_pages(lago, "/subscriptions", "subscriptions", {"status[]": "terminated"})
    for subscription in ended:
        if _ended_lately(subscription, now):
            by_customer.setdefault(str(subscription["external_customer_id"]), [])
    done: Counter[str] = Counter()
    for customer, subscriptions in sorted(by_customer.items()):
        try:
            synced = await sync_grants(
                lago, catalog, customer, _granting_plan(catalog, subscriptions)
            )
            done[synced.outcome] += 1
        except Exception as exc:
            log.warning("packs.grants.customer_failed", external_customer_id=customer,
                        error=type(exc).__name__)  # fmt: skip
            done["error"] += 1
    if done.keys() - {"unchanged", "no_wallet"}:
        log.info("packs.grants.done", **done)
    return dict(done)


async def run(runtime: Runtime, catalog: Callable[[], Catalog | None], stop: asyncio.Event) -> None:
    """Worker job entry point: ``catalog`` is a ``() -> Catalog | None`` (the catalog loaded
    now)."""
    while not stop.is_set():
        try:
            await run_once(runtime.lago, catalog())
        except Exception as exc:
            log_failure(log, "packs.grants.failed", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=runtime.settings.grants_sync_seconds)


# --- the next grant -------------------------------------------------------------------------


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _step(moment: datetime, interval: str, count: int) -> datetime:
    """``moment`` plus ``count`` intervals; a month's missing day is its last (Lago grants on
    the last day of a shorter month)."""
    if interval == "weekly":
        return moment + timedelta(weeks=count)
    index = moment.month - 1 + _MONTHS[interval] * count
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _next_day(anchor: datetime, interval: str, now: datetime) -> date:
    """The day of the next grant: a rule not started yet grants on its ``started_at``; after
    that Lago grants at its first hourly run of each anniversary day, so today's is done."""
    if anchor > now:
        return anchor.date()
    count = 1
    while _step(anchor, interval, count).date() <= now.date():
        count += 1
    return _step(anchor, interval, count).date()


def _tokens(value: Any) -> int | str:
    number = Decimal(str(value))
    return int(number) if number == number.to_integral_value() else format(number.normalize(), "f")


def next_grant(
    catalog: Catalog | None, plan_code: str | None, wallet: dict[str, Any] | None, now: datetime
) -> dict[str, Any] | None:
    """The next recurring grant, for a balance answer, or None when there is none.

    From the gateway's rule on ``wallet`` (the token wallet as Lago serializes it, with its
    ``recurring_transaction_rules``) when it has one, else from the catalog's grant for
    ``plan_code`` (the rule not made yet: it would start one interval from ``now``)::

        {"tokens": 500, "interval": "weekly", "name": "Premium: 500 tokens a week",
         "next_grant_on": "2026-12-13", "source": "lago"}

    ``next_grant_on`` is the day Lago grants next (its hourly clock runs the rule once on each
    anniversary of ``started_at``; the day is counted in UTC here, in the customer's time zone
    by Lago). ``tokens`` is an int (a decimal string for a fractional rule). ``source`` is
    ``lago`` (the wallet's rule) or ``catalog``. ``now`` must be timezone-aware.
    """
    rules = (wallet or {}).get("recurring_transaction_rules") or []
    rule = next((r for r in rules if r.get("status", "active") == "active"
                 and is_gateway_rule(r)), None)  # fmt: skip
    if rule is not None and rule.get("interval") in _PER:
        anchor_text = rule.get("started_at") or (wallet or {}).get("created_at")
        anchor = _parse(str(anchor_text)) if anchor_text else now
        interval = str(rule["interval"])
        return {
            "tokens": _tokens(rule.get("granted_credits") or 0),
            "interval": interval,
            "name": rule.get("transaction_name"),
            "next_grant_on": _next_day(anchor, interval, now).isoformat(),
            "source": "lago",
        }
    grant = catalog.token_grant(plan_code) if catalog else None
    if grant is None or catalog is None or plan_code is None:
        return None
    return {
        "tokens": grant.tokens,
        "interval": grant.interval,
        "name": grant_name(catalog, plan_code, grant),
        "next_grant_on": _step(now, grant.interval, 1).date().isoformat(),
        "source": "catalog",
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
