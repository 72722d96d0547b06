"""The revenue figures as people and spreadsheets read them: table cells, charts, CSV.

Tables and chart tooltips show money as ``gateway.invoices.money.display`` does (``1,234.56
USD``), so a chart's values read exactly as its table's; CSV has major units and the currency
in its own column.
"""

from __future__ import annotations

import csv
import io
from datetime import date

from markupsafe import Markup

from gateway.finance.charts import Series, bar_chart, line_chart
from gateway.finance.revenue import Block, Column, Section
from gateway.invoices.money import display, exponent, plain


def month_label(month: str) -> str:
    """``2025-02`` → ``Feb 2025``."""
    return date(int(month[:4]), int(month[5:7]), 1).strftime("%b %Y")


def cell(value: int, column: Column, currency: str) -> str:
    """A figure as the table shows it: money with its currency, counts as they are."""
    return display(value, currency) if column.money else str(value)


def table(block: Block) -> list[tuple[str, list[str]]]:
    """The block's table: each month's label and its figures as text."""
    return [
        (month_label(month), [cell(row[c.key], c, block.currency) for c in block.dataset.columns])
        for month, row in zip(block.months, block.rows, strict=True)
    ]


def chart(block: Block) -> Markup:
    """The block's money figures as an SVG chart (values in major units, tooltips as the table)."""
    scale, currency = 10 ** exponent(block.currency), block.currency
    labels = [month_label(month) for month in block.months]
    series = [
        Series(
            c.heading,
            [row[c.key] / scale for row in block.rows],
            f"series-{c.key.replace('_', '-')}",
        )
        for c in block.dataset.columns
        if c.money
    ]
    title = f"{block.dataset.title} per month, {currency}"
    ident = f"{block.dataset.name}-{currency}"

    def fmt(value: float) -> str:
        return display(round(value * scale), currency)

    if block.dataset.chart == "line":
        return line_chart(labels, series[0], title=title, ident=ident, fmt=fmt)
    return bar_chart(labels, series, title=title, ident=ident, fmt=fmt)


def csv_text(section: Section) -> str:
    """The section as CSV: a line per currency and month, amounts in major units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = section.dataset.columns
    writer.writerow(["month", "currency", *(c.key for c in columns)])
    for block in section.blocks:
        for month, row in zip(block.months, block.rows, strict=True):
            values = [plain(row[c.key], block.currency) if c.money else row[c.key] for c in columns]
            writer.writerow([month, block.currency, *values])
    return out.getvalue()
