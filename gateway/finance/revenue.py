"""The revenue page's figures: Lago's analytics read concurrently, shaped per currency and month.

MRR, gross revenue, invoice collection and overdue balance come from Lago's ``/analytics/*``
(through ``gateway.analytics.service``, which makes every figure a number). They are always
read for every currency, so the page knows which currencies exist and has every month of the
window; the currency filter is applied here. Amounts stay in minor units, rounded to the
unit (MRR may hold a fraction of one), and are never added across currencies. A read Lago
fails or refuses leaves its dataset with a problem; the others are still shown.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from gateway.analytics.service import ROOTS, figures
from gateway.errors import GatewayError
from gateway.integrations.lago.client import LagoClient

MONTH_CHOICES = (3, 6, 12, 24)
DEFAULT_MONTHS = 12
MONTH = re.compile(r"\d{4}-\d{2}")
Row = dict[str, Any]
Pairs = list[tuple[str, Any]]


@dataclass(frozen=True)
class Column:
    """One figure of a dataset: its CSV name, its heading, and whether it is money."""

    key: str
    heading: str
    money: bool = True


def _mrr(row: Row) -> Pairs:
    return [("mrr", row.get("amount_cents"))]


def _gross(row: Row) -> Pairs:
    return [("invoices", row.get("invoices_count")), ("gross_revenue", row.get("amount_cents"))]


def _collected(row: Row) -> Pairs:
    prefix = {"succeeded": "paid", "failed": "failed", "pending": "pending"}.get(
        str(row.get("payment_status"))
    )
    if prefix is None:
        return []
    return [
        (f"{prefix}_invoices", row.get("invoices_count")),
        (f"{prefix}_amount", row.get("amount_cents")),
    ]


def _overdue(row: Row) -> Pairs:
    return [("overdue_balance", row.get("amount_cents"))]


@dataclass(frozen=True)
class Dataset:
    """One chart and table of the page, from one of Lago's analytics routes."""

    name: str
    title: str
    route: str
    columns: tuple[Column, ...]
    pick: Callable[[Row], Pairs]
    chart: str = "bars"


DATASETS = {
    d.name: d
    for d in (
        Dataset("mrr", "MRR", "mrr", (Column("mrr", "MRR"),), _mrr),
        Dataset(
            "gross-revenue",
            "Gross revenue",
            "gross_revenue",
            (Column("invoices", "Invoices", money=False), Column("gross_revenue", "Gross revenue")),
            _gross,
        ),
        Dataset(
            "collections",
            "Collections",
            "invoice_collection",
            tuple(
                column
                for status in ("Paid", "Failed", "Pending")
                for column in (
                    Column(f"{status.lower()}_invoices", f"{status} invoices", money=False),
                    Column(f"{status.lower()}_amount", status),
                )
            ),
            _collected,
        ),
        Dataset(
            "overdue",
            "Overdue balance",
            "overdue_balance",
            (Column("overdue_balance", "Overdue balance"),),
            _overdue,
            chart="line",
        ),
    )
}


@dataclass(frozen=True)
class Query:
    """The page's filters: one currency (``None``: each one) and the last ``months`` months."""

    currency: str | None = None
    months: int = DEFAULT_MONTHS


def parse_query(params: Mapping[str, str]) -> tuple[Query, str | None]:
    """The filters from a query string, and what was not valid in it (then left out)."""
    currency = (params.get("currency") or "").strip().upper() or None
    months_text = (params.get("months") or "").strip()
    bad: list[str] = []
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
        currency, bad = None, [*bad, "currency"]
    months = int(months_text) if months_text.isdigit() else 0 if months_text else DEFAULT_MONTHS
    if months not in MONTH_CHOICES:
        months, bad = DEFAULT_MONTHS, [*bad, "months"]
    error = f"Some filters are not valid: {', '.join(bad)}." if bad else None
    return Query(currency, months), error


Answer = list[Row] | GatewayError


async def fetch(lago: LagoClient, months: int) -> dict[str, Answer]:
    """Each dataset's rows of the last ``months`` months, read from Lago concurrently; a read
    Lago failed or refused is its error."""
    wanted = tuple(DATASETS)
    params = [("months", str(months))]
    reads = (figures(lago, DATASETS[name].route, params) for name in wanted)
    answers = await asyncio.gather(*reads, return_exceptions=True)
    found: dict[str, Answer] = {}
    for name, answer in zip(wanted, answers, strict=True):
        if isinstance(answer, GatewayError):
            found[name] = answer
        elif isinstance(answer, BaseException):
            raise answer
        else:
            rows = answer.get(ROOTS[DATASETS[name].route])
            found[name] = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    return found


def units(value: Any) -> int | None:
    """A figure rounded to a whole unit (half up); ``None`` when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError):
        return None


@dataclass(frozen=True)
class Block:
    """One dataset in one currency: a row of figures (one per column) for each month."""

    dataset: Dataset
    currency: str
    months: list[str]
    rows: list[dict[str, int]]


@dataclass(frozen=True)
class Section:
    """One dataset on the page: a block per currency, or the reason it could not be read."""

    dataset: Dataset
    blocks: list[Block]
    problem: str | None = None
    unavailable: bool = False


@dataclass(frozen=True)
class Revenue:
    """Every dataset, over the same months, with the currencies Lago has figures in."""

    months: list[str]
    currencies: list[str]
    sections: list[Section]

    @property
    def unavailable(self) -> bool:
        """Whether Lago failed (did not refuse) every read."""
        return all(s.unavailable for s in self.sections)


def _month_span(months: set[str]) -> list[str]:
    """Every ``YYYY-MM`` from the first of ``months`` to the last."""
    if not months:
        return []
    first, last = min(months), max(months)
    index, end = int(first[:4]) * 12 + int(first[5:7]) - 1, int(last[:4]) * 12 + int(last[5:7]) - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index, end + 1)]


def _month_of(row: Row) -> str | None:
    month = str(row.get("month") or "")[:7]
    return month if MONTH.fullmatch(month) else None


def _totals(dataset: Dataset, rows: list[Row]) -> dict[tuple[str, str], dict[str, int]]:
    """Figures summed per (currency, month): gross revenue and overdue balance have a row
    per billing entity."""
    totals: defaultdict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for row in rows:
        currency, month = row.get("currency"), _month_of(row)
        if not isinstance(currency, str) or month is None:
            continue
        for key, value in dataset.pick(row):
            amount = units(value)
            if amount is not None:
                cell = totals[(currency, month)]
                cell[key] = cell.get(key, 0) + amount
    return totals


def _problem(error: GatewayError) -> str:
    if error.status >= 500:
        return "Lago did not answer; try again shortly."
    return f"Lago refused this read ({error.status} {error.code})."


def shape(answers: Mapping[str, Answer], currency: str | None = None) -> Revenue:
    """The page's figures from the datasets' answers, in ``currency`` only when given."""
    read = {name: rows for name, rows in answers.items() if not isinstance(rows, GatewayError)}
    totals = {name: _totals(DATASETS[name], rows) for name, rows in read.items()}
    months = _month_span({m for rows in read.values() for m in map(_month_of, rows) if m})
    currencies = sorted({cur for t in totals.values() for cur, _ in t})
    shown = [c for c in currencies if currency in (None, c)]
    sections = []
    for name, answer in answers.items():
        dataset = DATASETS[name]
        if isinstance(answer, GatewayError):
            sections.append(Section(dataset, [], _problem(answer), answer.status >= 500))
            continue
        found = totals[name]
        rows = {cur: [_full(dataset, found.get((cur, m), {})) for m in months] for cur in shown}
        sections.append(Section(dataset, [Block(dataset, c, months, rows[c]) for c in shown]))
    return Revenue(months, currencies, sections)


def _full(dataset: Dataset, found: dict[str, int]) -> dict[str, int]:
    return {column.key: found.get(column.key, 0) for column in dataset.columns}
