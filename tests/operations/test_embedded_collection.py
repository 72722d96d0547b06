"""The embedded default with Stripe configured: closing the period collects the invoice."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.auth.service import create_key
from gateway.customers import store as links
from gateway.migrations.runner import upgrade
from lago.emulator import EmulatorState
from tests.collection.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe
from tests.conftest import make_settings
from tests.relay.conftest import eventually

pytestmark = pytest.mark.asyncio


async def test_a_closed_periods_invoice_is_charged_and_lago_is_told_it_is_paid(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    stripe = FakeStripe()
    settings = make_settings(
        url,
        lago_api_url="",
        lago_api_key="",
        stripe_secret_key=API_KEY,
        stripe_api_base="https://stripe.test",
        stripe_webhook_secret=WEBHOOK_SECRET,
        collection_return_url="https://shop.test/done",
    )
    app = create_app(settings, stripe_transport=stripe, run_workers=True)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        lago: EmulatorState = app.state.emulator.state.lago
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://127.0.0.1:8080"
        )
        async with app.state.parts.runtime.database.session() as session:
            key = await create_key(session, "dev", ["admin"])
            stripe_id = stripe.add_customer("ap@acme.test")
            stripe.add_card(stripe_id)
            await links.save(session, "acme", stripe_customer_id=stripe_id)
            await session.commit()
        admin = {"Authorization": f"Bearer {key}"}
        customer = {"external_id": "acme", "name": "Acme", "currency": "USD"}
        subscription = {"external_customer_id": "acme", "plan_code": "basic_monthly",
                        "external_id": "sub_acme"}  # fmt: skip
        await client.post("/api/v1/customers", json={"customer": customer}, headers=admin)
        await client.post(
            "/api/v1/subscriptions", json={"subscription": subscription}, headers=admin
        )

        [invoice] = (await client.post("/lago/_emulator/close_period")).json()["invoices"]
        await eventually(lambda: stripe.payment_intents)
        for event in list(stripe.events):  # Stripe's webhooks, as Stripe posts them
            body, headers = stripe.signed(event)
            await client.post("/gateway/webhooks/stripe", content=body, headers=headers)
        paid = lago.invoices[invoice["lago_id"]]
        await eventually(lambda: paid["payment_status"] == "succeeded")
        await client.aclose()

    [intent] = stripe.payment_intents.values()
    assert (intent["amount"], intent["currency"], intent["customer"]) == (999, "usd", stripe_id)
    assert intent["status"] == "succeeded"
