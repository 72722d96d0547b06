"""Lago's subscription routes (``/api/v1/subscriptions``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from gateway.billing.payloads import body_schema, read_root
from gateway.catalog.schemas import Catalog
from gateway.http.auth import BillingReader, BillingWriter
from gateway.http.dependencies import RuntimeDep, part
from gateway.http.pagination import LagoPage, query_pairs
from gateway.http.responses import OrjsonResponse
from gateway.meters.service import Meters
from gateway.subscriptions.schemas import (
    NULLABLE_ON_UPDATE,
    SubscriptionCreate,
    SubscriptionUpdate,
)
from gateway.subscriptions.service import Subscriptions
from gateway.usage.lookups import LagoLookups

router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"])
# Declared for the docs; the service checks the values (an audited, Lago-shaped 422).
Status = Annotated[str | None, Query(description="active (default) or pending")]


async def _subscriptions(
    runtime: RuntimeDep,
    lookups: Annotated[LagoLookups, part("lookups")],
    meters: Annotated[Meters, part("meters")],
    catalog: Annotated[Catalog | None, part("catalog")],
) -> Subscriptions:
    return Subscriptions(runtime.database, runtime.lago, lookups, meters, catalog)


SubscriptionsDep = Annotated[Subscriptions, Depends(_subscriptions)]


@router.post("", openapi_extra=body_schema(SubscriptionCreate))
async def create_subscription(
    request: Request, service: SubscriptionsDep, principal: BillingWriter
) -> Response:
    """Subscribe a customer to a plan; a new plan on an existing ``external_id`` changes it
    (upgrade at once, downgrade at the end of the period)."""
    params = read_root(await request.body(), "subscription")
    return OrjsonResponse(await service.create(params, principal.name))


@router.get("")
async def list_subscriptions(
    request: Request,
    service: SubscriptionsDep,
    _: BillingReader,
    external_customer_id: str | None = None,
    plan_code: str | None = None,
    page: LagoPage = None,
    per_page: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Response:
    """Lago's list (active only unless ``status[]`` says otherwise)."""
    return OrjsonResponse(await service.index(query_pairs(request)))


@router.get("/{external_id}")
async def get_subscription(
    external_id: str,
    request: Request,
    service: SubscriptionsDep,
    _: BillingReader,
    status: Annotated[
        Literal["active", "pending", "terminated", "canceled"] | None, Query()
    ] = None,
) -> Response:
    """One subscription (the active record unless ``status`` names another)."""
    return OrjsonResponse(await service.get(external_id, query_pairs(request)))


@router.put("/{external_id}", openapi_extra=body_schema(SubscriptionUpdate))
async def update_subscription(
    external_id: str,
    request: Request,
    service: SubscriptionsDep,
    principal: BillingWriter,
    status: Status = None,
) -> Response:
    """Change name, end date, start date (pending only) or plan overrides;
    ``ending_at: null`` undoes a scheduled end."""
    params = read_root(await request.body(), "subscription", NULLABLE_ON_UPDATE)
    return OrjsonResponse(
        await service.update(external_id, params, query_pairs(request), principal.name)
    )


@router.delete("/{external_id}")
async def terminate_subscription(
    external_id: str,
    request: Request,
    service: SubscriptionsDep,
    principal: BillingWriter,
    status: Status = None,
    on_termination_invoice: Annotated[str | None, Query(description="generate or skip")] = None,
    on_termination_credit_note: Annotated[
        str | None, Query(description="credit, refund or skip (pay-in-advance plans)")
    ] = None,
) -> Response:
    """Terminate now (``?status=pending`` cancels a pending one) with Lago's options."""
    return OrjsonResponse(
        await service.terminate(external_id, query_pairs(request), principal.name)
    )
