"""The gateway's own billing endpoints: buy a token pack, read the balance, apply a promo code."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query

from gateway.audit.service import record
from gateway.auth.service import Scope
from gateway.catalog.endpoints import CatalogDep
from gateway.errors import GatewayError, ValidationFailed, from_lago
from gateway.http.auth import BillingReader, BillingWriter
from gateway.http.dependencies import RuntimeDep, part, part_of
from gateway.http.fastpath import FastCall, FastRoute
from gateway.http.responses import OrjsonResponse
from gateway.integrations.lago.client import LagoError
from gateway.meters.service import Meters
from gateway.packs import account, service, snapshot
from gateway.packs.schemas import PromoCode
from gateway.runtime import Runtime

router = APIRouter(tags=["token packs"])


@router.post("/gateway/customers/{external_id}/token-packs/{pack}", status_code=201)
async def buy_token_pack(
    external_id: str,
    pack: str,
    runtime: RuntimeDep,
    catalog: CatalogDep,
    principal: BillingWriter,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> OrjsonResponse:
    """Buy a catalog token pack: a Lago wallet top-up of its paid credits (pending until the
    credit invoice is paid); the bonus is granted once that payment settles. Repeats with the
    same ``Idempotency-Key`` buy once."""
    stale_after = runtime.settings.lago_timeout_seconds * 6 + 10
    result = await service.buy_pack(
        runtime.database,
        runtime.lago,
        catalog,
        actor=principal.name,
        external_customer_id=external_id,
        pack_code=pack,
        idempotency_key=idempotency_key,
        stale_after=stale_after,
    )
    if result.status < 300 and not result.replayed:
        # The wallet changed: its account (balance, holds) reads it again.
        await account.refresh_quietly(runtime.database, runtime.lago, catalog, external_id)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return OrjsonResponse(result.body, status_code=result.status, headers=headers)


@router.get("/gateway/customers/{external_id}/balance")
async def get_balance(
    external_id: str,
    catalog: CatalogDep,
    meters: Annotated[Meters, part("meters")],
    _: BillingReader,
    external_subscription_id: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    """From the gateway's meters (no Lago call for a known customer): plan, period, usage and
    holds against the plan's allowances, the token wallet (Lago's credits as last read, the
    period's spending, holds, what is available), features and token costs, with a
    ``can_generate`` hint per metric (a hold is the race-free answer)."""
    try:
        found = await snapshot.customer_balance(
            meters, catalog, external_id, external_subscription_id
        )
    except LagoError as exc:
        raise from_lago(exc) from exc
    return {"balance": found}


async def _fast_balance(call: FastCall) -> dict[str, Any]:
    """The balance read, answered by the door (``gateway.http.fastpath``) as the route above."""
    wanted = call.query.get("external_subscription_id")
    if wanted is not None and len(wanted) > 255:
        raise ValidationFailed(details={"external_subscription_id": ["string_too_long"]})
    catalog = part_of(call.app, "catalog")
    try:
        found = await snapshot.customer_balance(
            call.part, catalog, call.params["external_id"], wanted
        )
    except LagoError as exc:
        raise from_lago(exc) from exc
    return {"balance": found}


fast_routes = [
    FastRoute(
        "/gateway/customers/{external_id}/balance",
        Scope.BILLING_READ,
        _fast_balance,
        "meters",
        method="GET",
    )
]


@router.post("/gateway/customers/{external_id}/promo-codes")
async def apply_promo_code(
    external_id: str, body: PromoCode, runtime: RuntimeDep, principal: BillingWriter
) -> dict[str, Any]:
    """Apply a coupon by its code; unknown → 404, expired or already applied → 422."""
    started = time.perf_counter()
    audit: dict[str, Any] = {
        "actor": principal.name,
        "action": "packs.promo_code.apply",
        "target": external_id,
        "upstream": "lago",
        "detail": {"code": body.code},
    }
    try:
        applied = await service.apply_promo_code(
            runtime.lago, external_customer_id=external_id, code=body.code.strip()
        )
    except GatewayError as exc:
        outcome = "failed" if exc.status >= 500 else "rejected"
        await _audit(runtime, {**audit, "outcome": outcome, "status": exc.status}, started)
        raise
    lago_id = (applied.get("applied_coupon") or {}).get("lago_id")
    audit.update(outcome="success", status=200, target_ids=[lago_id] if lago_id else None)
    await _audit(runtime, audit, started)
    return applied


async def _audit(runtime: Runtime, fields: dict[str, Any], started: float) -> None:
    async with runtime.database.session() as session:
        record(session, **fields, latency_ms=(time.perf_counter() - started) * 1000)
        await session.commit()
