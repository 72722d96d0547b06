"""Lago's analytics read through, with every figure a JSON number.

Lago renders the SQL columns behind these figures as Rails does: ``numeric`` sums as
strings (``"1000.0"``: MRR and overdue amounts, gross revenue's ``invoices_count``) and
``float`` sums as numbers (``2000.0``); its OpenAPI spec, and the official SDKs that parse
them as integers, expect numbers. So whole figures are answered as integers and fractional
ones (an MRR spread over a quarter) as JSON numbers; nothing else in the answer changes.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.billing.passthrough import Params, read
from gateway.integrations.lago.client import LagoClient

# Each route's collection key (Lago's controller_name).
ROOTS = {
    "gross_revenue": "gross_revenues",
    "invoice_collection": "invoice_collections",
    "invoiced_usage": "invoiced_usages",
    "mrr": "mrrs",
    "overdue_balance": "overdue_balances",
}
FIGURES = ("amount_cents", "invoices_count")


def number(value: Any) -> Any:
    """A figure as a JSON number: integral → ``int``, else ``float``; others unchanged."""
    if isinstance(value, bool) or not isinstance(value, str | float | int):
        return value
    try:
        exact = Decimal(value) if isinstance(value, str) else Decimal(repr(value))
    except InvalidOperation:
        return value
    if not exact.is_finite():
        return value
    return int(exact) if exact == exact.to_integral_value() else float(exact)


def lago_params(query: Params) -> Params:
    """The query as Lago takes it; ``currency`` upper-cased, as Lago's controllers do."""
    return [(k, v.upper() if k == "currency" else v) for k, v in query]


async def figures(lago: LagoClient, route: str, query: Params) -> dict[str, Any]:
    """One analytics read (errors in Lago's shape), its figures made JSON numbers."""
    answer = await read(lago, f"/analytics/{route}", lago_params(query))
    rows = answer.get(ROOTS[route])
    if isinstance(rows, list):
        for row in rows:
            if isinstance(row, dict):
                row.update({k: number(row[k]) for k in FIGURES if k in row})
    return answer
