"""Lago's ``/api/v1/analytics/*`` routes: revenue figures per month, read through to Lago.

The query passes through as Lago takes it (``currency`` upper-cased); the parameters named
here are those Lago's controllers read (``app/controllers/api/v1/analytics/*``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from gateway.analytics import service
from gateway.http.auth import BillingReader
from gateway.http.dependencies import RuntimeDep
from gateway.http.pagination import query_pairs
from gateway.http.responses import OrjsonResponse

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

Currency = Annotated[
    str | None, Query(description="ISO 4217; only this currency (default: every currency)")
]
Months = Annotated[
    int | None, Query(description="Only the last N months, this one included (≤ 1: this one)")
]
BillingEntity = Annotated[
    str | None, Query(description="A billing entity's code (an unknown code filters nothing)")
]
Customer = Annotated[
    str | None, Query(description="Only this customer's invoices (a deleted one has none)")
]


@router.get("/gross_revenue")
async def gross_revenue(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    currency: Currency = None,
    months: Months = None,
    external_customer_id: Customer = None,
    billing_entity_code: BillingEntity = None,
) -> Response:
    """Finalized invoices' totals less refunds, per month, currency and billing entity."""
    answer = await service.figures(runtime.lago, "gross_revenue", query_pairs(request))
    return OrjsonResponse(answer)


@router.get("/invoice_collection")
async def invoice_collection(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    currency: Currency = None,
    months: Months = None,
    billing_entity_code: BillingEntity = None,
) -> Response:
    """Finalized invoices' count and total per month, payment status and currency."""
    answer = await service.figures(runtime.lago, "invoice_collection", query_pairs(request))
    return OrjsonResponse(answer)


@router.get("/invoiced_usage")
async def invoiced_usage(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    currency: Currency = None,
    months: Months = None,
    billing_entity_code: BillingEntity = None,
) -> Response:
    """Invoiced usage fees per month, billable metric code and currency."""
    answer = await service.figures(runtime.lago, "invoiced_usage", query_pairs(request))
    return OrjsonResponse(answer)


@router.get("/mrr")
async def mrr(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    currency: Currency = None,
    months: Months = None,
    billing_entity_code: BillingEntity = None,
) -> Response:
    """Monthly recurring revenue from subscription fees, per month and currency."""
    answer = await service.figures(runtime.lago, "mrr", query_pairs(request))
    return OrjsonResponse(answer)


@router.get("/overdue_balance")
async def overdue_balance(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    currency: Currency = None,
    months: Months = None,
    external_customer_id: Customer = None,
    billing_entity_code: BillingEntity = None,
) -> Response:
    """Overdue invoices' unpaid amounts per due month, currency and billing entity."""
    answer = await service.figures(runtime.lago, "overdue_balance", query_pairs(request))
    return OrjsonResponse(answer)
