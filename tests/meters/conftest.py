from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.catalog.loader import load_catalog
from gateway.catalog.service import apply_catalog
from gateway.meters.metering import meter_rules
from tests.conftest import Gateway

CATALOG_FILE = Path(__file__).resolve().parents[2] / "lago" / "catalog.yaml"


@pytest.fixture
async def metered(gateway: Gateway) -> Gateway:
    """The gateway with the shipped catalog loaded, metered and applied to its Lago."""
    catalog = load_catalog(CATALOG_FILE)
    gateway.parts.catalog = catalog
    gateway.parts.meters.rules = meter_rules(catalog)
    await apply_catalog(gateway.runtime.lago, catalog)
    return gateway


async def subscribe(gw: Gateway, customer: str, plan: str = "basic_monthly", **extra: Any) -> str:
    """A customer and a subscription created through the gateway; the subscription's id."""
    headers = await gw.headers("billing:write")
    response = await gw.client.post(
        "/api/v1/customers",
        json={"customer": {"external_id": customer, "currency": "USD", **extra}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    sub = f"sub_{customer}"
    response = await gw.client.post(
        "/api/v1/subscriptions",
        json={"subscription": {"external_customer_id": customer, "plan_code": plan,
                               "external_id": sub}},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return sub
