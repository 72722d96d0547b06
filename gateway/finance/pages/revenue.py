"""The finance revenue page: MRR, gross revenue, collections and overdue balance per month.

Each dataset is a chart drawn on the server (inline SVG) with its figures in a table beside
it, one per currency, and a CSV export of the same filters. Lago's figures are read on each
request (``gateway.finance.revenue``) and shown by ``gateway.finance.revenue_output``; when
Lago cannot be reached the page says so (503).
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.errors import GatewayError, NotFound
from gateway.finance import revenue, revenue_output
from gateway.finance.endpoints import SignedIn, page, runtime_of

router = APIRouter()


@router.get("/revenue", include_in_schema=False)
async def revenue_page(request: Request, viewer: SignedIn) -> Response:
    """The revenue page with its filters (``currency``, ``months``)."""
    query, error = revenue.parse_query(request.query_params)
    answers = await revenue.fetch(runtime_of(request).lago, query.months)
    figures = revenue.shape(answers, query.currency)
    kept = {"currency": query.currency or "", "months": str(query.months)}
    return page(
        request,
        "revenue.html",
        viewer,
        status=503 if figures.unavailable else 200,
        section="revenue",
        query=query,
        error=error,
        figures=figures,
        export_query=urlencode({k: v for k, v in kept.items() if v}),
        month_choices=revenue.MONTH_CHOICES,
        chart=revenue_output.chart,
        table=revenue_output.table,
    )


@router.get("/revenue/{dataset}.csv", include_in_schema=False)
async def revenue_export(dataset: str, request: Request, _: SignedIn) -> Response:
    """One dataset as CSV, with the page's filters and months."""
    if dataset not in revenue.DATASETS:
        raise NotFound(f"no dataset {dataset!r}: one of {', '.join(revenue.DATASETS)}")
    query, _error = revenue.parse_query(request.query_params)
    answers = await revenue.fetch(runtime_of(request).lago, query.months)
    failed = answers[dataset]
    if isinstance(failed, GatewayError):
        raise failed
    figures = revenue.shape(answers, query.currency)
    section = next(s for s in figures.sections if s.dataset.name == dataset)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Response(
        revenue_output.csv_text(section),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{dataset}-{stamp}.csv"'},
    )
