"""What the customer pages show: the customer list, and one customer gathered from Lago, the
gateway's meters and its own tables.

Lago is asked for the customer first (its 404: an unknown customer, and nothing else is
read); the other reads are independent, so they run together, and one that fails leaves its
own section marked as not answered, never the page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gateway.audit.service import AuditFilter, search
from gateway.billing.passthrough import read, segment
from gateway.billing.service import Billing
from gateway.catalog.schemas import Catalog
from gateway.collection import store as collection
from gateway.collection.models import Collection
from gateway.customers import store as links
from gateway.db import Database
from gateway.errors import Conflict, GatewayError
from gateway.finance.customer_rows import (
    AuditLine,
    UsageView,
    audit_line,
    movement,
    newest_first,
    usage_view,
)
from gateway.integrations.lago.client import LagoClient, LagoError
from gateway.invoices import service as invoices
from gateway.invoices.schemas import InvoiceFilters
from gateway.logging import get_logger
from gateway.meters.service import Meters
from gateway.packs import snapshot

log = get_logger(__name__)
T = TypeVar("T")
LIST_SIZE = 25
RECENT = 20
SUBSCRIPTION_STATUSES = ("active", "pending", "terminated", "canceled")


class Unanswered(Exception):
    """A section whose source did not answer."""


@dataclass
class Section:
    """One section's rows, or ``failed`` when its source did not answer."""

    items: list[dict[str, Any]] = field(default_factory=list)
    failed: bool = False
    total: int | None = None


@dataclass
class CustomerList:
    customers: list[dict[str, Any]]
    meta: dict[str, Any]
    failed: bool = False


async def customer_list(lago: LagoClient, term: str, page: int) -> CustomerList:
    """One page of Lago's customers whose name, external id or email contains ``term``."""
    query = [("page", str(page)), ("per_page", str(LIST_SIZE))]
    if term:
        query.append(("search_term", term))
    try:
        found = await read(lago, "/customers", query)
    except GatewayError as exc:
        log.warning("finance.customers.list_failed", status=exc.status)
        return CustomerList([], {}, failed=True)
    return CustomerList(found.get("customers") or [], found.get("meta") or {})


@dataclass
class Sources:
    """Where a customer's facts come from."""

    database: Database
    lago: LagoClient
    meters: Meters
    catalog: Catalog | None


@dataclass
class CustomerView:
    external_id: str
    customer: dict[str, Any] | None
    stripe_customer_id: str | None
    subscriptions: Section
    usage: UsageView
    wallets: Section
    invoices: Section
    payments: Section
    credit_notes: Section
    attempts: list[Collection]
    audit: list[AuditLine]


async def _section(name: str, fetch: Awaitable[T]) -> T | Unanswered:
    """``fetch``'s answer, or ``Unanswered`` when Lago failed or refused it."""
    try:
        return await fetch
    except (GatewayError, LagoError) as exc:
        status = getattr(exc, "status", None)
        log.warning("finance.customer.section_failed", section=name, status=status)
        return Unanswered(status)


def _listed(found: dict[str, Any] | Unanswered, key: str) -> Section:
    if isinstance(found, Unanswered):
        return Section(failed=True)
    total = (found.get("meta") or {}).get("total_count")
    return Section(list(found.get(key) or []), total=total)


async def customer_view(sources: Sources, external_id: str) -> CustomerView | None:
    """Everything the customer page shows; None when Lago does not know the customer."""
    lago, path = sources.lago, f"/customers/{segment(external_id)}"
    customer, local = await asyncio.gather(
        _section("customer", read(lago, path)), _local(sources.database, external_id)
    )
    if isinstance(customer, Unanswered) and customer.args[0] == 404:
        return None
    recent = [("per_page", str(RECENT))]
    subscription_query = [("status[]", s) for s in SUBSCRIPTION_STATUSES]
    subscriptions, usage, wallets, listed, payments, notes = await asyncio.gather(
        _section("subscriptions", read(lago, f"{path}/subscriptions", subscription_query)),
        _section("usage", _balances(sources, external_id)),
        _section("wallets", _wallets(sources, external_id)),
        _section("invoices", _invoices(lago, external_id)),
        _section("payments", read(lago, f"{path}/payments", recent)),
        _section("credit_notes", _credit_notes(lago, external_id)),
    )
    found = None if isinstance(customer, Unanswered) else customer.get("customer") or {}
    link, attempts, trail = local
    billing = (found or {}).get("billing_configuration") or {}
    return CustomerView(
        external_id=external_id,
        customer=found,
        stripe_customer_id=link or billing.get("provider_customer_id"),
        subscriptions=_listed(subscriptions, "subscriptions"),
        usage=UsageView(failed=True) if isinstance(usage, Unanswered) else usage,
        wallets=Section(failed=True) if isinstance(wallets, Unanswered) else wallets,
        invoices=_listed(listed, "invoices"),
        payments=_listed(payments, "payments"),
        credit_notes=_listed(notes, "credit_notes"),
        attempts=attempts,
        audit=trail,
    )


async def _balances(sources: Sources, external_id: str) -> UsageView:
    """The balance answer (the gateway's meters) of the customer's active subscription, or of
    each one when it has several."""

    async def read_balance(subscription: str | None) -> dict[str, Any]:
        return await snapshot.customer_balance(
            sources.meters, sources.catalog, external_id, subscription
        )

    try:
        return usage_view([await read_balance(None)])
    except Conflict as exc:
        if exc.code != "several_active_subscriptions":
            raise
        chosen = (exc.details or {}).get("external_subscription_id") or []
        answers = await asyncio.gather(*(read_balance(str(s)) for s in chosen))
        return usage_view(list(answers))


async def _wallets(sources: Sources, external_id: str) -> Section:
    """Lago's wallets of the customer, each with its newest transactions."""
    billing = Billing(sources.database, sources.lago)
    found = await billing.wallets([("external_customer_id", external_id)])
    wallets = [dict(w) for w in found.get("wallets") or []]
    recent = [("per_page", str(RECENT))]
    moves = await asyncio.gather(
        *(billing.wallet_transactions(str(w["lago_id"]), recent) for w in wallets)
    )
    for wallet, listed in zip(wallets, moves, strict=True):
        currency = str(wallet.get("currency") or "USD")
        moved = listed.get("wallet_transactions") or []
        wallet["transactions"] = [movement(t, currency) for t in moved]
    wallets.sort(key=lambda w: (w.get("status") != "active", str(w.get("created_at") or "")))
    return Section(wallets)


async def _invoices(lago: LagoClient, external_id: str) -> dict[str, Any]:
    filters = InvoiceFilters(external_customer_id=external_id)
    found = await invoices.list_page(lago, filters, 1, RECENT)
    return {**found, "invoices": newest_first(found.get("invoices") or [])}


async def _credit_notes(lago: LagoClient, external_id: str) -> dict[str, Any]:
    query = [("external_customer_id", external_id), ("per_page", str(RECENT))]
    return await read(lago, "/credit_notes", query)


async def _local(
    database: Database, external_id: str
) -> tuple[str | None, list[Collection], list[AuditLine]]:
    """The Stripe link, collection attempts and audit trail the gateway keeps itself."""
    async with database.session() as session:
        link = await links.find_in(session, external_id)
        attempts = await collection.for_customer(session, external_id, RECENT)
        trail = await search(session, AuditFilter(target=external_id), before_id=None, limit=100)
    stripe_id = link.stripe_customer_id if link is not None else None
    return stripe_id, attempts, [audit_line(entry, external_id) for entry in trail]
