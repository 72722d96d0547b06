from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from sqlalchemy import text
from standardwebhooks import Webhook

from tests.conftest import Gateway
from tests.relay.conftest import create_endpoint, enqueue, eventually, sending
from tests.relay.receiver import Receiver


async def test_a_message_reaches_its_subscriber_signed_in_the_envelope(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    created = await create_endpoint(relay_gateway, filter_types=["invoice.*"])
    receiver.secrets = [created["secret"]]
    payload = {"webhook_type": "invoice.created", "invoice": {"lago_id": "inv_1", "total": 100}}
    async with sending(relay_gateway, receiver):
        assert await enqueue(relay_gateway, "lago_evt_1", "invoice.created", payload)
        await eventually(lambda: receiver.received)
    [got] = receiver.received
    assert got.message_id == "lago_evt_1"
    Webhook(created["secret"]).verify(got.body, got.headers)
    envelope = got.envelope
    assert set(envelope) == {"id", "type", "source", "created_at", "data"}
    assert envelope["id"] == "lago_evt_1"
    assert envelope["type"] == "invoice.created"
    assert envelope["source"] == "lago"
    assert envelope["data"] == payload
    assert envelope["created_at"].endswith("Z")
    assert got.headers["content-type"] == "application/json"


async def test_filters_and_wildcards_decide_who_receives_what(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    await create_endpoint(relay_gateway, "/invoices", ["invoice.*"])
    await create_endpoint(relay_gateway, "/payments", ["payment_intent.*"])
    await create_endpoint(relay_gateway, "/all", ["*"])
    await create_endpoint(relay_gateway, "/exact", ["customer.created", "invoice.voided"])
    types = {
        "m1": "invoice.created",
        "m2": "invoice.voided",
        "m3": "payment_intent.succeeded",
        "m4": "customer.created",
        "m5": "customer.updated",
        "m6": "invoiceish.created",
        "m7": "paymentXintent.succeeded",  # `_` in a pattern is a literal underscore
        "m8": "Invoice.created",  # types are case-sensitive
    }
    async with sending(relay_gateway, receiver):
        for message_id, type_ in types.items():
            assert await enqueue(relay_gateway, message_id, type_)
        await eventually(lambda: len(receiver.received) == 8 + 2 + 1 + 2)

    def ids(path: str) -> set[str]:
        return {r.message_id for r in receiver.at(path)}

    assert ids("/invoices") == {"m1", "m2"}
    assert ids("/payments") == {"m3"}
    assert ids("/all") == set(types)
    assert ids("/exact") == {"m2", "m4"}


async def test_a_second_message_with_the_same_id_is_refused_and_delivered_once(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    await create_endpoint(relay_gateway, filter_types=["*"])
    assert await enqueue(relay_gateway, "dup", "invoice.created")
    assert not await enqueue(relay_gateway, "dup", "invoice.created", {"other": True})
    async with sending(relay_gateway, receiver):
        await eventually(lambda: receiver.received)
        async with relay_gateway.runtime.database.engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM relay_deliveries"))).scalar()
    assert count == 1
    assert receiver.counts == {"dup": 1}
    assert orjson.loads(receiver.received[0].body)["data"] == {"n": "dup"}


async def test_disabled_endpoints_get_no_deliveries(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    await create_endpoint(relay_gateway, "/off", ["*"], enabled=False)
    await create_endpoint(relay_gateway, "/on", ["*"])
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: receiver.received)
    assert [r.path for r in receiver.received] == ["/on"]


async def test_metrics_count_deliveries_latency_and_pending(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    await create_endpoint(relay_gateway, filter_types=["*"])
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: receiver.received)
    text_ = (await relay_gateway.client.get("/metrics")).text
    for name in (
        'gateway_relay_deliveries_total{outcome="delivered"}',
        "gateway_relay_attempt_seconds_bucket",
        "gateway_relay_receipt_to_delivery_seconds_bucket",
        "gateway_relay_deliveries_pending",
        "gateway_relay_endpoints_disabled_total",
        'gateway_relay_messages_enqueued_total{source="lago"}',
    ):
        assert name in text_, name


async def test_a_sender_in_another_process_is_woken_at_the_commit(
    relay_gateway: Gateway, receiver: Receiver, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite API and worker share a process")
    from gateway.relay import sender as sender_module

    created = await create_endpoint(relay_gateway, filter_types=["invoice.*"])
    receiver.secrets = [created["secret"]]
    # As in `gateway worker` beside `serve --no-worker`: no in-process wake-up reaches the
    # sender (announce=False), and its idle poll is far away; only the database's
    # notification can wake it.
    monkeypatch.setattr(sender_module, "IDLE_POLL_SECONDS", 60.0)
    async with sending(relay_gateway, receiver):
        await asyncio.sleep(0.5)  # the sender is idle, listening
        started = time.monotonic()
        assert await enqueue(relay_gateway, "lago_evt_far", "invoice.created", announce=False)
        await eventually(lambda: receiver.received, seconds=5)
        waited = time.monotonic() - started

    assert [got.message_id for got in receiver.received] == ["lago_evt_far"]
    assert waited < 2.0
