"""The catalog at run time (loaded when the gateway starts, ``service.load_configured``),
shown at ``GET /gateway/catalog``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from gateway.catalog.entitlements import features_of
from gateway.catalog.schemas import Catalog
from gateway.errors import NotFound
from gateway.http.auth import BillingReader
from gateway.http.dependencies import part

CatalogDep = Annotated[Catalog | None, part("catalog")]


router = APIRouter(tags=["catalog"])


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
            {
                **plan.model_dump(
                    mode="json",
                    include={
                        "code",
                        "name",
                        "interval",
                        "amount_cents",
                        "amount_currency",
                        "allowances",
                    },
                ),
                "entitlements": features_of(catalog, plan.code),
            }
            for plan in catalog.plans
        ],
        "features": [feature.model_dump(mode="json") for feature in catalog.features],
        "billable_metrics": sorted(catalog.metric_codes),
        "token_wallet": wallet.model_dump(mode="json") if wallet else None,
        "token_costs": {k: v.model_dump(mode="json") for k, v in catalog.token_costs.items()},
        "token_packs": packs,
    }


@router.get("/gateway/catalog")
async def show_catalog(catalog: CatalogDep, _: BillingReader) -> dict[str, Any]:
    """Plans with their allowances, token costs and token packs, as the gateway sells them."""
    if catalog is None:
        raise NotFound("no catalog is configured (GATEWAY_CATALOG_PATH)", code="catalog_not_found")
    return {"catalog": _summary(catalog)}
