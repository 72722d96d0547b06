from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.catalog.loader import load_catalog
from gateway.catalog.service import apply_catalog
from gateway.db import utcnow
from gateway.meters.metering import meter_rules
from gateway.packs import reconciler
from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway

CATALOG_FILE = Path(__file__).resolve().parents[2] / "lago" / "catalog.yaml"
HMAC_KEY = "packs-test-lago-hmac-key"
BUY = "/gateway/customers/{}/token-packs/{}"


async def _stock(gateway: Gateway) -> Gateway:
    catalog = load_catalog(CATALOG_FILE)
    gateway.parts.catalog = catalog
    gateway.parts.meters.rules = meter_rules(catalog)
    await apply_catalog(gateway.runtime.lago, catalog)
    return gateway


@pytest.fixture
async def shop(gateway: Gateway) -> Gateway:
    """The gateway with the shipped catalog loaded and applied to its (emulated) Lago."""
    return await _stock(gateway)


@pytest.fixture
async def hooked_shop(database_url: str, emulator: EmulatorState) -> AsyncIterator[Gateway]:
    """The shop, with Lago sending it HMAC-signed webhooks (workers off: tests drive them)."""
    emulator.hmac_key = HMAC_KEY
    settings = make_settings(database_url, lago_webhook_hmac_key=HMAC_KEY)
    gateway, manager = await start_gateway(settings, emulator)
    try:
        await _stock(gateway)
        endpoint = {"webhook_url": "http://gateway.test/gateway/webhooks/lago",
                    "signature_algo": "hmac"}  # fmt: skip
        await gateway.runtime.lago.call(
            "POST", "/webhook_endpoints", json={"webhook_endpoint": endpoint}
        )
        yield gateway
    finally:
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == [], "Lago contract violations"


async def subscribe(gw: Gateway, customer: str, plan: str) -> None:
    """A customer and its subscription ``sub_<customer>``, created through the gateway (so
    its meters know the subscription's billing terms)."""
    headers = await gw.headers("billing:write")
    customer_body = {"customer": {"external_id": customer, "currency": "USD"}}
    response = await gw.client.post("/api/v1/customers", json=customer_body, headers=headers)
    assert response.status_code == 200, response.text
    subscription = {"external_customer_id": customer, "plan_code": plan,
                    "external_id": f"sub_{customer}"}  # fmt: skip
    response = await gw.client.post(
        "/api/v1/subscriptions", json={"subscription": subscription}, headers=headers
    )
    assert response.status_code == 200, response.text


async def buy(gw: Gateway, customer: str, pack: str) -> dict[str, Any]:
    """Buy ``pack`` for a new customer; the purchase as the gateway answered it."""
    await subscribe(gw, customer, "basic_monthly")
    response = await gw.client.post(
        BUY.format(customer, pack), headers=await gw.headers("billing:write")
    )
    assert response.status_code == 201, response.text
    bought: dict[str, Any] = response.json()["token_pack_purchase"]
    return bought


async def pay(gw: Gateway, invoice_id: str, outcome: str = "succeeded") -> None:
    """Mark a credit invoice paid (or failed) in Lago, as the collection capability does."""
    await gw.runtime.lago.call(
        "PUT", f"/invoices/{invoice_id}", json={"invoice": {"payment_status": outcome}}
    )


async def reconcile(gw: Gateway, after: float = 0.0) -> dict[str, int]:
    """One reconciler pass, ``after`` seconds from now."""
    now: datetime = utcnow() + timedelta(seconds=after)
    return await reconciler.run_once(gw.runtime, now=now)


def purchased(gw: Gateway) -> list[dict[str, Any]]:
    """The emulator's paid top-ups (one per pack bought)."""
    return [
        t
        for t in gw.emulator.wallet_transactions.values()
        if t["transaction_status"] == "purchased"
    ]


def bonuses(gw: Gateway, purchase_id: str) -> list[dict[str, Any]]:
    """The emulator's granted transactions made for a purchase."""
    return [
        t
        for t in gw.emulator.wallet_transactions.values()
        if t["transaction_status"] == "granted" and purchase_id in str(t["name"])
    ]


async def rows(gw: Gateway, sql: str, **params: Any) -> list[Any]:
    async with gw.runtime.database.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def purchase_row(gw: Gateway, purchase_id: str) -> Any:
    [row] = await rows(gw, "SELECT * FROM pack_purchases WHERE purchase_id = :p", p=purchase_id)
    return row
