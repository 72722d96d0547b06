"""What the finance pages show: invoices and their totals, one invoice in full, collection.

Amounts are summed per currency (never across currencies), in minor units, from the
invoices as Lago computed them.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from gateway.audit.models import AuditEntry
from gateway.audit.service import AuditFilter, search
from gateway.auth.models import ApiKey
from gateway.auth.service import KEY_PREFIX, Principal, Scope, hash_key
from gateway.collection import store as collection
from gateway.collection.models import Collection, CollectionRefund
from gateway.db import Database
from gateway.integrations.lago.client import LagoClient
from gateway.invoices import service as invoices
from gateway.invoices.schemas import InvoiceFilters

TOTALS_MAX_PAGES = 100  # 10,000 invoices; past that the page says the totals are partial
PAGE_SIZE = 50


@dataclass(frozen=True)
class Viewer:
    """Who is signed in: the key's name, and whether it may act (billing:write)."""

    name: str
    can_write: bool


@dataclass(frozen=True)
class SignIn:
    """What the session keeps: the key's prefix and hash (never the key), and its name."""

    prefix: str
    key_hash: str
    name: str


async def sign_in(database: Database, key: str) -> SignIn | None:
    """The key's identity if it is valid and may read billing; None otherwise."""
    parts = key.strip().split("_")
    if len(parts) < 3 or not key.startswith(KEY_PREFIX):
        return None
    digest = hash_key(key.strip())
    viewer = await current_viewer(database, parts[1], digest)
    return None if viewer is None else SignIn(parts[1], digest, viewer.name)


async def current_viewer(database: Database, prefix: str, key_hash: str) -> Viewer | None:
    """The signed-in key, checked on every page: a revoked key ends the session."""
    async with database.session() as session:
        result = await session.exec(select(ApiKey).where(ApiKey.prefix == prefix))
        row = result.first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, key_hash):
        return None
    principal = Principal(name=row.name, scopes=frozenset(row.scopes.split()))
    if not principal.allows(Scope.BILLING_READ):
        return None
    return Viewer(row.name, principal.allows(Scope.BILLING_WRITE))


@dataclass
class Money:
    """Sums for one currency, in minor units."""

    currency: str
    count: int = 0
    issued: int = 0
    paid: int = 0
    outstanding: int = 0
    overdue: int = 0


@dataclass
class Totals:
    by_currency: dict[str, Money] = field(default_factory=dict)
    counted: int = 0
    partial: bool = False

    def add(self, invoice: dict[str, Any]) -> None:
        currency = str(invoice.get("currency") or "?")
        money = self.by_currency.setdefault(currency, Money(currency))
        self.counted += 1
        money.count += 1
        if invoice.get("status") not in ("finalized",):
            return  # drafts are not issued; voided ones are owed by nobody
        total = int(invoice.get("total_amount_cents") or 0)
        paid = _paid(invoice)
        due = max(int(invoice.get("total_due_amount_cents", total - paid) or 0), 0)
        if invoice.get("payment_status") == "succeeded":
            due = 0
        money.issued += total
        money.paid += paid
        money.outstanding += due
        if invoice.get("payment_overdue"):
            money.overdue += due


def _paid(invoice: dict[str, Any]) -> int:
    paid = invoice.get("total_paid_amount_cents")
    if paid is None:
        succeeded = invoice.get("payment_status") == "succeeded"
        paid = invoice.get("total_amount_cents") if succeeded else 0
    return int(paid or 0)


async def totals(lago: LagoClient, filters: InvoiceFilters) -> Totals:
    """Totals over every invoice matching ``filters`` (up to ``TOTALS_MAX_PAGES`` pages)."""
    found = Totals()
    first = await invoices.list_page(lago, filters, 1, 100)
    pages = int((first.get("meta") or {}).get("total_pages") or 1)
    async for invoice in invoices.iterate(lago, filters, first=first, max_pages=TOTALS_MAX_PAGES):
        found.add(invoice)
    found.partial = pages > TOTALS_MAX_PAGES
    return found


@dataclass
class InvoiceList:
    invoices: list[dict[str, Any]]
    meta: dict[str, Any]
    totals: Totals


async def invoice_list(lago: LagoClient, filters: InvoiceFilters, page: int) -> InvoiceList:
    """One page of invoices and the totals of the whole filtered set, fetched together."""
    listed, summed = await asyncio.gather(
        invoices.list_page(lago, filters, page, PAGE_SIZE), totals(lago, filters)
    )
    return InvoiceList(listed.get("invoices") or [], listed.get("meta") or {}, summed)


@dataclass
class InvoiceView:
    invoice: dict[str, Any]
    attempts: list[Collection]
    refunds: list[CollectionRefund]
    audit: list[AuditEntry]


async def invoice_view(database: Database, lago: LagoClient, lago_id: str) -> InvoiceView:
    """One invoice as Lago computed it, every collection attempt, refund and audit line."""
    invoice = await invoices.fetch(lago, lago_id)
    async with database.session() as session:
        attempts = await collection.for_invoice(session, lago_id)
        refunds = await collection.refunds(session, invoice_id=lago_id)
        trail = await search(session, AuditFilter(target=lago_id), before_id=None, limit=200)
    return InvoiceView(invoice, attempts, refunds, trail)


@dataclass
class Overview:
    outstanding: Totals
    failed: Totals
    needing_customer: list[Collection]
    in_dunning: list[Collection]
    refunds: list[CollectionRefund]
    disputes: list[Collection]


def _unpaid(payment_status: str) -> InvoiceFilters:
    return InvoiceFilters(statuses=("finalized",), payment_statuses=(payment_status,))


async def overview(database: Database, lago: LagoClient) -> Overview:
    """Where the money stands: owed, failed, waiting for customers, refunded, disputed."""
    owed, failed = await asyncio.gather(
        totals(lago, _unpaid("pending")), totals(lago, _unpaid("failed"))
    )
    async with database.session() as session:
        needing = await collection.needing_customer(session, 100)
        dunning = await collection.in_dunning(session, 100)
        refunds = await collection.refunds(session, limit=50)
        disputes = await collection.disputes(session, 50)
    return Overview(owed, failed, needing, dunning, refunds, disputes)


def currencies(*groups: Iterable[str]) -> list[str]:
    return sorted({c for group in groups for c in group})
