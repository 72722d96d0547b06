"""The catalog at run time: loaded when the gateway starts, shown at ``GET /gateway/catalog``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter

from gateway.catalog.loader import load_catalog, resolve_catalog_path
from gateway.catalog.schemas import Catalog
from gateway.catalog.service import apply_catalog, metric_codes, metric_rules
from gateway.errors import NotFound
from gateway.http.auth import BillingReader
from gateway.http.dependencies import RuntimeDep
from gateway.logging import get_logger
from gateway.runtime import Runtime

log = get_logger(__name__)


async def install(runtime: Runtime) -> Catalog | None:
    """Load the configured catalog, pin usage codes (and what their events carry) to it,
    and fill an embedded emulator."""
    settings = runtime.settings
    explicit = "catalog_path" in settings.model_fields_set
    path = resolve_catalog_path(settings.catalog_path, explicit=explicit)
    if path is None:
        log.info("catalog.none")
        return None
    catalog = load_catalog(path)
    runtime.catalog = catalog
    runtime.lookups.allowed_codes = metric_codes(catalog)
    runtime.lookups.metric_rules = metric_rules(catalog)
    if settings.uses_emulator:
        result = await apply_catalog(runtime.lago, catalog)
        log.info("catalog.applied_to_emulator", changes=len(result.applied))
    log.info("catalog.loaded", path=str(path), metrics=len(catalog.billable_metrics))
    return catalog


@asynccontextmanager
async def load_at_start(app: Any) -> AsyncIterator[None]:
    """Runs inside the application's lifespan, once the runtime exists."""
    await install(app.state.runtime)
    yield


router = APIRouter(tags=["catalog"], lifespan=load_at_start)


def _summary(catalog: Catalog) -> dict[str, Any]:
    wallet = catalog.token_wallet
    packs = [
        {
            **pack.model_dump(mode="json"),
            "total_tokens": pack.total_tokens,
            "currency": wallet.currency if wallet else None,
        }
        for pack in catalog.token_packs
    ]
    return {
        "plans": [
            plan.model_dump(
                mode="json",
                include={
                    "code",
                    "name",
                    "interval",
                    "amount_cents",
                    "amount_currency",
                    "allowances",
                },
            )
            for plan in catalog.plans
        ],
        "billable_metrics": sorted(catalog.metric_codes),
        "token_wallet": wallet.model_dump(mode="json") if wallet else None,
        "token_costs": {k: v.model_dump(mode="json") for k, v in catalog.token_costs.items()},
        "token_packs": packs,
    }


@router.get("/gateway/catalog")
async def show_catalog(runtime: RuntimeDep, _: BillingReader) -> dict[str, Any]:
    """Plans with their allowances, token costs and token packs, as the gateway sells them."""
    if runtime.catalog is None:
        raise NotFound("no catalog is configured (GATEWAY_CATALOG_PATH)", code="catalog_not_found")
    return {"catalog": _summary(runtime.catalog)}
