"""Lago's wallet, wallet transaction, applied coupon, add-on, plan, billable metric and coupon
routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from gateway.billing.passthrough import segment
from gateway.billing.payloads import body_schema, read_root
from gateway.billing.schemas import (
    AddOnCreate,
    AddOnUpdate,
    AppliedCouponCreate,
    WalletCreate,
    WalletTransactionCreate,
    WalletUpdate,
)
from gateway.billing.service import Billing
from gateway.http.auth import BillingReader, BillingWriter
from gateway.http.dependencies import RuntimeDep
from gateway.http.pagination import LagoPage, query_pairs
from gateway.http.responses import OrjsonResponse
from gateway.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Page = LagoPage
PerPage = Annotated[int | None, Query(ge=1, le=1000, description="Items per page (Lago: 100)")]


def _billing(runtime: Runtime) -> Billing:
    return Billing(runtime.database, runtime.lago)


@router.post("/wallets", tags=["wallets"], openapi_extra=body_schema(WalletCreate))
async def create_wallet(
    request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Create a customer's wallet (prepaid credits), optionally with initial credits."""
    params = read_root(await request.body(), "wallet")
    return OrjsonResponse(await _billing(runtime).create_wallet(params, principal.name))


@router.get("/wallets", tags=["wallets"])
async def list_wallets(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    external_customer_id: Annotated[str | None, Query(description="Required, as in Lago")] = None,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """A customer's wallets."""
    return OrjsonResponse(await _billing(runtime).wallets(query_pairs(request)))


@router.get("/wallets/{lago_id}", tags=["wallets"])
async def get_wallet(lago_id: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One wallet with its balances (settled and ongoing)."""
    return OrjsonResponse(await _billing(runtime).wallet(lago_id))


@router.put("/wallets/{lago_id}", tags=["wallets"], openapi_extra=body_schema(WalletUpdate))
async def update_wallet(
    lago_id: str, request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Change a wallet's name, expiry or recurring top-up rules."""
    params = read_root(await request.body(), "wallet")
    return OrjsonResponse(await _billing(runtime).update_wallet(lago_id, params, principal.name))


@router.delete("/wallets/{lago_id}", tags=["wallets"])
async def terminate_wallet(lago_id: str, runtime: RuntimeDep, principal: BillingWriter) -> Response:
    """Terminate a wallet."""
    return OrjsonResponse(await _billing(runtime).terminate_wallet(lago_id, principal.name))


@router.post(
    "/wallet_transactions",
    tags=["wallets"],
    openapi_extra=body_schema(WalletTransactionCreate),
)
async def create_wallet_transaction(
    request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Top up a wallet (paid credits are invoiced and count once paid; granted at once) or void."""
    params = read_root(await request.body(), "wallet_transaction")
    service = _billing(runtime)
    return OrjsonResponse(await service.create_wallet_transaction(params, principal.name))


@router.get("/wallets/{lago_id}/wallet_transactions", tags=["wallets"])
async def list_wallet_transactions(
    lago_id: str,
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    status: Annotated[str | None, Query(description="pending, settled, failed")] = None,
    transaction_type: Annotated[str | None, Query(description="inbound, outbound")] = None,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """A wallet's transactions."""
    service = _billing(runtime)
    return OrjsonResponse(await service.wallet_transactions(lago_id, query_pairs(request)))


@router.post("/applied_coupons", tags=["coupons"], openapi_extra=body_schema(AppliedCouponCreate))
async def apply_coupon(request: Request, runtime: RuntimeDep, principal: BillingWriter) -> Response:
    """Apply a coupon to a customer."""
    params = read_root(await request.body(), "applied_coupon")
    return OrjsonResponse(await _billing(runtime).apply_coupon(params, principal.name))


@router.get("/applied_coupons", tags=["coupons"])
async def list_applied_coupons(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    external_customer_id: str | None = None,
    status: Annotated[str | None, Query(description="active or terminated")] = None,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """Applied coupons, optionally of one customer."""
    return OrjsonResponse(await _billing(runtime).read("/applied_coupons", query_pairs(request)))


@router.delete("/customers/{external_id}/applied_coupons/{applied_coupon_id}", tags=["coupons"])
async def remove_applied_coupon(
    external_id: str, applied_coupon_id: str, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Terminate a coupon applied to a customer."""
    service = _billing(runtime)
    return OrjsonResponse(
        await service.remove_coupon(external_id, applied_coupon_id, principal.name)
    )


@router.get("/coupons", tags=["coupons"])
async def list_coupons(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """The coupons defined in Lago."""
    return OrjsonResponse(await _billing(runtime).read("/coupons", query_pairs(request)))


@router.get("/coupons/{code}", tags=["coupons"])
async def get_coupon(code: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One coupon by code."""
    return OrjsonResponse(await _billing(runtime).read(f"/coupons/{segment(code)}"))


@router.get("/plans", tags=["catalog"])
async def list_plans(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """The plans, with their charges."""
    return OrjsonResponse(await _billing(runtime).read("/plans", query_pairs(request)))


@router.get("/plans/{code}", tags=["catalog"])
async def get_plan(code: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One plan by code."""
    return OrjsonResponse(await _billing(runtime).read(f"/plans/{segment(code)}"))


@router.get("/billable_metrics", tags=["catalog"])
async def list_billable_metrics(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """The billable metrics."""
    return OrjsonResponse(await _billing(runtime).read("/billable_metrics", query_pairs(request)))


@router.get("/billable_metrics/{code}", tags=["catalog"])
async def get_billable_metric(code: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One billable metric by code."""
    path = f"/billable_metrics/{segment(code)}"
    return OrjsonResponse(await _billing(runtime).read(path))


@router.post("/add_ons", tags=["add_ons"], openapi_extra=body_schema(AddOnCreate))
async def create_add_on(
    request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Create an add-on: a named, priced item that one-off invoices bill."""
    params = read_root(await request.body(), "add_on")
    return OrjsonResponse(await _billing(runtime).create_add_on(params, principal.name))


@router.get("/add_ons", tags=["add_ons"])
async def list_add_ons(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    page: Page = None,
    per_page: PerPage = None,
) -> Response:
    """The add-ons, newest first."""
    return OrjsonResponse(await _billing(runtime).read("/add_ons", query_pairs(request)))


@router.get("/add_ons/{code:path}", tags=["add_ons"])
async def get_add_on(code: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One add-on by code."""
    return OrjsonResponse(await _billing(runtime).read(f"/add_ons/{segment(code)}"))


@router.put("/add_ons/{code:path}", tags=["add_ons"], openapi_extra=body_schema(AddOnUpdate))
async def update_add_on(
    code: str, request: Request, runtime: RuntimeDep, principal: BillingWriter
) -> Response:
    """Change an add-on (name, code, price, description)."""
    params = read_root(await request.body(), "add_on")
    return OrjsonResponse(await _billing(runtime).update_add_on(code, params, principal.name))


@router.delete("/add_ons/{code:path}", tags=["add_ons"])
async def delete_add_on(code: str, runtime: RuntimeDep, principal: BillingWriter) -> Response:
    """Delete an add-on; invoices that billed it keep their fees."""
    return OrjsonResponse(await _billing(runtime).delete_add_on(code, principal.name))
