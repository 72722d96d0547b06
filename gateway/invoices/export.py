"""The invoice CSV for accounting: one row per invoice, amounts in major units, streamed.

Amounts are exact decimals in the invoice's currency (``12.34`` USD, ``1234`` JPY), never
floats. Text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) is
quoted with a leading apostrophe (CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from gateway.integrations.lago.client import LagoClient
from gateway.invoices import service
from gateway.invoices.money import plain
from gateway.invoices.schemas import InvoiceFilters

AMOUNTS = (
    "fees_amount",
    "coupons_amount",
    "credit_notes_amount",
    "prepaid_credit_amount",
    "taxes_amount",
    "total_amount",
    "total_paid_amount",
    "total_due_amount",
)
COLUMNS = (
    "number",
    "lago_id",
    "issuing_date",
    "payment_due_date",
    "customer_external_id",
    "customer_name",
    "invoice_type",
    "status",
    "payment_status",
    "payment_overdue",
    "currency",
    *AMOUNTS,
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: Any) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _paid(invoice: dict[str, Any]) -> int:
    paid = invoice.get("total_paid_amount_cents")
    if paid is None:
        paid = invoice["total_amount_cents"] if invoice["payment_status"] == "succeeded" else 0
    return int(paid)


def _due(invoice: dict[str, Any]) -> int:
    due = invoice.get("total_due_amount_cents")
    if due is None:
        due = invoice["total_amount_cents"] - _paid(invoice)
    return int(due)


def row(invoice: dict[str, Any]) -> list[str]:
    """One CSV row for a (listed) Lago invoice."""
    currency = str(invoice.get("currency") or "USD")
    customer = invoice.get("customer") or {}
    amounts = {
        name: plain(invoice.get(f"{name}_cents"), currency)
        for name in AMOUNTS
        if name not in ("total_paid_amount", "total_due_amount")
    }
    amounts["total_paid_amount"] = plain(_paid(invoice), currency)
    amounts["total_due_amount"] = plain(_due(invoice), currency)
    return [
        _text(invoice.get("number")),
        _text(invoice.get("lago_id")),
        _text(invoice.get("issuing_date")),
        _text(invoice.get("payment_due_date")),
        _text(customer.get("external_id")),
        _text(customer.get("name")),
        _text(invoice.get("invoice_type")),
        _text(invoice.get("status")),
        _text(invoice.get("payment_status")),
        "true" if invoice.get("payment_overdue") else "false",
        currency,
        *(amounts[name] for name in AMOUNTS),
    ]


def _lines(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


async def first_page(lago: LagoClient, filters: InvoiceFilters) -> dict[str, Any]:
    """Fetched before the response starts, so a Lago failure is still a proper error status."""
    return await service.list_page(lago, filters, 1, 100)


async def csv_chunks(
    lago: LagoClient, filters: InvoiceFilters, first: dict[str, Any]
) -> AsyncIterator[str]:
    """The header, then one chunk per Lago page."""
    yield _lines([list(COLUMNS)])
    batch: list[list[str]] = []
    async for invoice in service.iterate(lago, filters, first=first):
        batch.append(row(invoice))
        if len(batch) == 100:
            yield _lines(batch)
            batch = []
    if batch:
        yield _lines(batch)
