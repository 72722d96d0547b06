from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.db import Database
from gateway.relay import store
from gateway.relay.sender import Sender
from lago.emulator import EmulatorState
from tests.conftest import Gateway, start_gateway
from tests.relay.conftest import create_endpoint, enqueue, eventually, relay_settings, sending
from tests.relay.receiver import Receiver

TYPES = ["invoice.created", "invoice.payment_status_updated", "payment_intent.succeeded"]


async def _stop(gw: Gateway, manager: Any) -> None:
    await gw.client.aclose()
    await manager.__aexit__(None, None, None)


async def test_a_subscriber_down_for_a_while_gets_everything_once_across_a_restart(
    database_url: str, emulator: EmulatorState
) -> None:
    settings = relay_settings(database_url, relay_retry_schedule=(0.05, 0.1, 0.2) + (0.3,) * 100)
    receiver = Receiver(down=True)
    sent: dict[str, dict[str, Any]] = {}

    gw, manager = await start_gateway(settings, emulator)
    try:
        all_ = await create_endpoint(gw, "/all", ["*"])
        invoices = await create_endpoint(gw, "/invoices", ["invoice.*"])
        receiver.secrets = [all_["secret"], invoices["secret"]]
        async with sending(gw, receiver):
            for i in range(30):
                sent[f"msg_{i}"] = {"i": i, "blob": "x" * (i * 50), "nested": {"list": [i, str(i)]}}
                assert await enqueue(gw, f"msg_{i}", TYPES[i % 3], sent[f"msg_{i}"])
            await eventually(lambda: receiver.refused >= 60)
    finally:
        await _stop(gw, manager)

    # A new gateway process on the same database: nothing in memory survives.
    gw, manager = await start_gateway(settings, emulator)
    try:
        for i in range(30, 40):
            sent[f"msg_{i}"] = {"i": i}
            assert await enqueue(gw, f"msg_{i}", TYPES[i % 3], sent[f"msg_{i}"])
        receiver.down = False
        expected_all = set(sent)
        expected_invoices = {m for m, d in sent.items() if TYPES[d["i"] % 3].startswith("invoice.")}
        async with sending(gw, receiver):
            await eventually(
                lambda: (
                    {r.message_id for r in receiver.at("/all")} == expected_all
                    and {r.message_id for r in receiver.at("/invoices")} == expected_invoices
                ),
                seconds=30,
            )
    finally:
        await _stop(gw, manager)

    assert receiver.bad_signatures == 0
    for path in ("/all", "/invoices"):
        got = receiver.at(path)
        assert len(got) == len({r.message_id for r in got}), f"duplicates at {path}"
        for r in got:
            envelope = r.envelope
            assert envelope["id"] == r.message_id
            assert envelope["data"] == sent[r.message_id]
            assert envelope["type"] == TYPES[envelope["data"]["i"] % 3]


async def test_leases_of_a_killed_sender_run_out_and_another_sender_delivers(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    await create_endpoint(relay_gateway, filter_types=["*"])
    for i in range(10):
        await enqueue(relay_gateway, f"m{i}", "invoice.created")
    # A sender claimed everything, then was SIGKILLed: its leases are all that is left.
    taken = await store.claim_due(relay_gateway.runtime.database, 100, lease_seconds=0.5)
    assert len(taken) == 10
    async with sending(relay_gateway, receiver):
        await asyncio.sleep(0.2)
        assert receiver.received == []
        await eventually(lambda: len(receiver.received) == 10)
    assert receiver.counts == {f"m{i}": 1 for i in range(10)}


async def test_a_stopping_sender_hands_back_attempts_it_could_not_finish(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    await create_endpoint(relay_gateway, filter_types=["*"])
    release = asyncio.Event()

    class Slow(Receiver):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await release.wait()
            await super().__call__(scope, receive, send)

    slow = Slow()
    await enqueue(relay_gateway, "m1", "invoice.created")
    sender = Sender(
        relay_gateway.runtime.settings, relay_gateway.runtime.database, transport=slow.transport()
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    await eventually(lambda: sender._inflight)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gateway.relay.sender.SHUTDOWN_GRACE_SECONDS", 0.05)
        stop.set()
        await task
    release.set()
    # The lease was handed back: due now, the unfinished attempt not counted.
    taken = await store.claim_due(relay_gateway.runtime.database, 10, lease_seconds=30)
    assert [(c.message_id, c.attempt) for c in taken] == [("m1", 1)]


async def test_two_senders_on_one_database_never_deliver_the_same_attempt_twice(
    relay_gateway: Gateway,
) -> None:
    """On PostgreSQL the claims use SKIP LOCKED; on SQLite the single writer serialises them."""
    await create_endpoint(relay_gateway, "/a", ["*"])
    await create_endpoint(relay_gateway, "/b", ["invoice.*"])
    for i in range(300):
        await enqueue(relay_gateway, f"m{i}", TYPES[i % 3])
    settings = relay_gateway.runtime.settings.model_copy(update={"relay_concurrency": 16})
    databases = [Database(settings.database_url) for _ in range(2)]
    receivers = [Receiver(), Receiver()]
    senders = [
        Sender(settings, db, transport=r.transport())
        for db, r in zip(databases, receivers, strict=True)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop)) for s in senders]
    try:
        await eventually(lambda: sum(len(r.received) for r in receivers) >= 500, seconds=30)
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for db in databases:
            await db.dispose()
    assert all(r.received for r in receivers), "both senders took part"
    for path, expected in (("/a", 300), ("/b", 200)):
        ids = [got.message_id for r in receivers for got in r.at(path)]
        assert len(ids) == expected == len(set(ids))
