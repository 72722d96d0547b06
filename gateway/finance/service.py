"""What the finance pages show: invoices and their totals, one invoice in full, collection.

Amounts are summed per currency (never across currencies), in minor units, from the
invoices as Lago computed them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.audit.models import AuditEntry
from gateway.audit.service import AuditFilter, search
from gateway.collection import store as collection
from gateway.collection.models import Collection, CollectionRefund
from gateway.db import Database
from gateway.finance.listing import Ageing, Row, ageing, ordered, row_of
from gateway.integrations.lago.client import LagoClient
from gateway.invoices import service as invoices
from gateway.invoices.schemas import InvoiceFilters
from gateway.users import service as users
from gateway.users.service import Person

TOTALS_MAX_PAGES = 100  # 10,000 invoices; past that the page says the totals are partial
PAGE_SIZE = 50


@dataclass(frozen=True)
class Viewer:
    """Who is signed in: the audit trail's actor, the name pages show, and whether they may act
    (an operator)."""

    actor: str
    name: str
    can_write: bool


async def current_viewer(database: Database, user_id: int, version: int) -> Viewer | None:
    """The signed-in person, checked on every page: disabling the account, a new password or
    a new role ends the session."""
    person = await users.current(database, user_id, version)
    if person is None:
        return None
    return viewer_of_person(person)


def viewer_of_person(person: Person) -> Viewer:
    return Viewer(actor=person.actor, name=person.display_name, can_write=person.can_act)


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
    found, _, _ = await _every(lago, filters)
    return found


async def _every(lago: LagoClient, filters: InvoiceFilters) -> tuple[Totals, list[Row], int]:
    """The totals and rows of every invoice matching ``filters``, and Lago's count of them."""
    found, rows = Totals(), []
    first = await invoices.list_page(lago, filters, 1, 100)
    meta = first.get("meta") or {}
    async for invoice in invoices.iterate(lago, filters, first=first, max_pages=TOTALS_MAX_PAGES):
        found.add(invoice)
        rows.append(row_of(invoice))
    found.partial = int(meta.get("total_pages") or 1) > TOTALS_MAX_PAGES
    return found, rows, int(meta.get("total_count") or len(rows))


@dataclass
class InvoiceList:
    """One page of rows, the pager, and the whole filtered set's totals and ageing."""

    rows: list[Row]
    meta: dict[str, Any]
    totals: Totals
    ageing: Ageing


async def invoice_list(
    lago: LagoClient,
    filters: InvoiceFilters,
    page: int,
    sort: str | None = None,
    descending: bool = False,
) -> InvoiceList:
    """One page of invoices (Lago's order, or sorted by a column), with the totals and the
    overdue ageing of the whole filtered set."""
    summed, rows, count = await _every(lago, filters)
    rows = ordered(rows, sort, descending)
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    meta = {
        "current_page": page,
        "total_pages": pages,
        "total_count": count,
        "prev_page": page - 1 or None,
        "next_page": page + 1 if page < pages else None,
    }
    chunk = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return InvoiceList(chunk, meta, summed, ageing(rows, datetime.now(UTC).date()))


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
