"""The invoice list's rows: compact copies of Lago's invoices, sorted, paged and aged.

Lago lists invoices newest first and sorts by nothing else, so the page reads the whole
filtered set (up to ``service.TOTALS_MAX_PAGES`` pages, as the totals do), keeps the few
fields a row shows, and sorts and pages it here. Overdue ageing buckets come from the same
rows: what is still owed on finalized invoices, by days past the payment due date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

SORTS = {
    "number": "Number",
    "issued": "Issued",
    "due": "Due",
    "customer": "Customer",
    "total": "Total",
    "owed": "Amount due",
}
BUCKETS = ("Not yet due", "1-30 days", "31-60 days", "61-90 days", "Over 90 days")


@dataclass(frozen=True)
class Row:
    """What one line of the invoice table shows."""

    lago_id: str
    number: str
    issuing_date: str
    payment_due_date: str
    customer_name: str
    customer_id: str
    invoice_type: str
    status: str
    payment_status: str
    overdue: bool
    currency: str
    total_cents: int
    due_cents: int


def row_of(invoice: dict[str, Any]) -> Row:
    """The row of one Lago invoice."""
    customer = invoice.get("customer") or {}
    total = int(invoice.get("total_amount_cents") or 0)
    due = int(invoice.get("total_due_amount_cents", total) or 0)
    return Row(
        lago_id=str(invoice["lago_id"]),
        number=str(invoice.get("number") or ""),
        issuing_date=str(invoice.get("issuing_date") or ""),
        payment_due_date=str(invoice.get("payment_due_date") or ""),
        customer_name=str(customer.get("name") or customer.get("external_id") or ""),
        customer_id=str(customer.get("external_id") or ""),
        invoice_type=str(invoice.get("invoice_type") or ""),
        status=str(invoice.get("status") or ""),
        payment_status=str(invoice.get("payment_status") or ""),
        overdue=bool(invoice.get("payment_overdue")),
        currency=str(invoice.get("currency") or ""),
        total_cents=total,
        due_cents=0 if invoice.get("payment_status") == "succeeded" else max(due, 0),
    )


def _key(sort: str, row: Row) -> tuple[Any, ...]:
    keys: dict[str, tuple[Any, ...]] = {
        "number": (row.number,),
        "issued": (row.issuing_date, row.number),
        "due": (row.payment_due_date, row.number),
        "customer": (row.customer_name.lower(), row.customer_id),
        "total": (row.currency, row.total_cents),
        "owed": (row.currency, row.due_cents),
    }
    return keys[sort]


def ordered(rows: list[Row], sort: str | None, descending: bool) -> list[Row]:
    """``rows`` sorted by a column of ``SORTS`` (amounts within their currency), else as is."""
    if sort not in SORTS:
        return rows
    return sorted(rows, key=lambda row: _key(str(sort), row), reverse=descending)


@dataclass
class Ageing:
    """Owed amounts and invoice counts per currency and bucket of days past due."""

    amounts: dict[str, list[int]] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)

    def add(self, row: Row, today: date) -> None:
        if row.status != "finalized" or row.due_cents <= 0:
            return
        bucket = bucket_of(row.payment_due_date, today)
        self.amounts.setdefault(row.currency, [0] * len(BUCKETS))[bucket] += row.due_cents
        self.counts.setdefault(row.currency, [0] * len(BUCKETS))[bucket] += 1


def bucket_of(due_date: str, today: date) -> int:
    """0 when not yet due (or no due date), then 1-30, 31-60, 61-90, over 90 days late."""
    try:
        late = (today - date.fromisoformat(due_date)).days
    except ValueError:
        return 0
    if late <= 0:
        return 0
    return min(1 + (late - 1) // 30, len(BUCKETS) - 1)


def ageing(rows: list[Row], today: date) -> Ageing:
    """The ageing buckets of ``rows`` on ``today``."""
    found = Ageing()
    for row in rows:
        found.add(row, today)
    return found
