from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.catalog.loader import load_catalog
from gateway.catalog.service import apply_catalog
from tests.conftest import Gateway

CATALOG_FILE = Path(__file__).resolve().parents[2] / "lago" / "catalog.yaml"


@pytest.fixture
async def shop(gateway: Gateway) -> Gateway:
    """The gateway with the shipped catalog loaded and applied to its (emulated) Lago."""
    catalog = load_catalog(CATALOG_FILE)
    gateway.runtime.catalog = catalog
    await apply_catalog(gateway.runtime.lago, catalog)
    return gateway


async def subscribe(gw: Gateway, customer: str, plan: str) -> None:
    lago = gw.runtime.lago
    await lago.call(
        "POST", "/customers", json={"customer": {"external_id": customer, "currency": "USD"}}
    )
    await lago.call(
        "POST",
        "/subscriptions",
        json={
            "subscription": {
                "external_customer_id": customer,
                "plan_code": plan,
                "external_id": f"sub_{customer}",
            }
        },
    )


def purchased(gw: Gateway) -> list[dict[str, Any]]:
    """The emulator's paid top-ups (one per pack bought)."""
    return [
        t
        for t in gw.emulator.wallet_transactions.values()
        if t["transaction_status"] == "purchased"
    ]
