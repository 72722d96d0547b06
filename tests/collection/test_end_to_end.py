"""End to end, with the workers running: a customer with a card uses the product, Lago
invoices, the gateway charges, Lago shows it paid, and a relay subscriber hears of it;
and a declining card through dunning to ``collection.failed``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import uvicorn

from gateway.collection import collector
from lago.emulator import EmulatorState
from lago.emulator.usage import customer_usage_cents
from tests.billing.support import BASIC, ok, seed_catalog
from tests.collection.conftest import Harness, start_collecting
from tests.collection.stripe_fake import DECLINE, SUCCEED, FakeStripe
from tests.relay.conftest import eventually
from tests.relay.receiver import Receiver
from tests.support.postgres import free_port


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def network(harness: Harness) -> AsyncIterator[None]:
    """Lago's and Stripe's webhooks reach the gateway as they happen; a second collector
    process runs beside the worker's (as ``gateway worker`` scale-out would)."""
    stop = asyncio.Event()

    async def pump() -> None:
        while not stop.is_set():
            await harness.emulator.deliver_webhooks(harness.gw.client)
            await harness.post_stripe(harness.new_stripe_events())
            await collector.run_once(harness.gw.runtime)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(pump())
    try:
        yield
    finally:
        stop.set()
        await task


async def _customer_with_usage(harness: Harness, behaviour: str, photos: int) -> dict[str, Any]:
    gw = harness.gw
    await seed_catalog(gw)
    writer = await gw.headers("billing:write")
    ok(
        await gw.client.post(
            "/api/v1/customers",
            headers=writer,
            json={
                "customer": {
                    "external_id": "acme",
                    "name": "Acme",
                    "email": "ap@acme.test",
                    "currency": "USD",
                }
            },
        )
    )
    link = await gw.client.get("/api/v1/customers/acme", headers=await gw.headers("billing:read"))
    assert link.status_code == 200
    [stripe_customer] = [
        c for c in harness.stripe.customers.values() if c["metadata"].get("external_id") == "acme"
    ]
    harness.stripe.add_card(stripe_customer["id"], behaviour)
    ok(
        await gw.client.post(
            "/api/v1/subscriptions",
            headers=writer,
            json={
                "subscription": {
                    "external_customer_id": "acme",
                    "plan_code": BASIC,
                    "external_id": "sub_acme",
                }
            },
        )
    )
    events = [
        {
            "transaction_id": f"photo-{n}",
            "external_subscription_id": "sub_acme",
            "code": "photo_generation",
            "properties": {"quality": "hd"},
        }
        for n in range(photos)
    ]
    accepted = await gw.client.post(
        "/api/v1/events/batch", json={"events": events}, headers=await gw.headers("events:write")
    )
    assert accepted.status_code == 200, accepted.text
    await eventually(lambda: len(harness.emulator.events) == photos)  # the forwarder delivered
    usage = customer_usage_cents(harness.emulator, "acme")
    assert usage == photos * 5
    return harness.emulator.issue_invoice(
        "acme",
        usage,
        fees=[
            {
                "amount_cents": usage,
                "units": str(photos),
                "item": {"type": "charge", "code": "photo_generation", "name": "Photo generation"},
            }
        ],
    )


async def _subscribe(harness: Harness, base: str, receiver: Receiver, types: list[str]) -> None:
    created = await harness.gw.client.post(
        "/gateway/endpoints",
        json={"url": f"{base}/hook", "filter_types": types},
        headers=await harness.gw.headers("admin"),
    )
    assert created.status_code == 201, created.text
    receiver.secrets.append(created.json()["secret"])


def _envelopes(receiver: Receiver, kind: str) -> list[dict[str, Any]]:
    return [r.envelope for r in receiver.received if r.envelope["type"] == kind]


async def test_card_usage_invoice_charge_paid_and_relayed(
    database_url: str, emulator: EmulatorState, stripe: FakeStripe
) -> None:
    harness, manager = await start_collecting(database_url, emulator, stripe, run_workers=True)
    receiver = Receiver()
    try:
        async with serving(receiver) as base, network(harness):
            await _subscribe(
                harness, base, receiver, ["invoice.payment_status_updated", "collection.*"]
            )
            invoice = await _customer_with_usage(harness, SUCCEED, photos=12)

            await eventually(lambda: _envelopes(receiver, "invoice.payment_status_updated"))

        [update] = _envelopes(receiver, "invoice.payment_status_updated")
        assert update["source"] == "lago"
        assert update["data"]["invoice"]["lago_id"] == invoice["lago_id"]
        assert update["data"]["invoice"]["payment_status"] == "succeeded"
        assert harness.invoice(invoice["lago_id"])["payment_status"] == "succeeded"
        [intent] = harness.stripe.intents_for(invoice["lago_id"])
        assert (intent["amount"], intent["status"]) == (60, "succeeded")
        assert _envelopes(receiver, "collection.failed") == []
    finally:
        await harness.gw.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == []


async def test_declining_card_through_dunning_to_collection_failed(
    database_url: str, emulator: EmulatorState, stripe: FakeStripe
) -> None:
    harness, manager = await start_collecting(
        database_url,
        emulator,
        stripe,
        run_workers=True,
        collection_retry_days=(0.000001, 0.000002),  # a tenth of a second, then two
    )
    receiver = Receiver()
    try:
        async with serving(receiver) as base, network(harness):
            await _subscribe(harness, base, receiver, ["collection.*"])
            invoice = await _customer_with_usage(harness, DECLINE, photos=3)

            await eventually(lambda: _envelopes(receiver, "collection.failed"))

        [failed] = _envelopes(receiver, "collection.failed")
        assert failed["source"] == "gateway"
        assert failed["data"]["invoice"]["lago_id"] == invoice["lago_id"]
        assert failed["data"]["attempts"] == 3
        assert failed["data"]["last_attempt"]["failure_code"] == "generic_decline"
        assert harness.invoice(invoice["lago_id"])["payment_status"] == "failed"
        intents = harness.stripe.intents_for(invoice["lago_id"])
        assert [i["status"] for i in intents] == ["requires_payment_method"] * 3
        assert len({orjson.dumps(i["metadata"]) for i in intents}) == 3
    finally:
        await harness.gw.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == []
