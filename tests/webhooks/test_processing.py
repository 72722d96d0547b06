"""Background handling: one relay message per inbound webhook, however often it is handled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from gateway.webhooks import handlers, processor, store
from gateway.webhooks.models import InboundWebhook
from gateway.webhooks.processor import LEASE_SECONDS, Processor, message_id
from tests.webhooks.conftest import (
    LAGO_PATH,
    STRIPE_PATH,
    Hooks,
    lago_body,
    lago_headers,
    stripe_event,
    stripe_header,
)
from tests.webhooks.test_lago_inbound import _process


async def _post_lago(hooks: Hooks, lago_id: str = "inv_1", key: str = "uk_1") -> None:
    body = lago_body(lago_id=lago_id)
    response = await hooks.client.post(LAGO_PATH, content=body, headers=lago_headers(body, key))
    assert response.status_code == 200, response.text


async def _post_stripe(hooks: Hooks, event_id: str = "evt_1") -> None:
    body = stripe_event(event_id)
    response = await hooks.client.post(
        STRIPE_PATH, content=body, headers={"Stripe-Signature": stripe_header(body)}
    )
    assert response.status_code == 200, response.text


@pytest.fixture
async def registered() -> AsyncIterator[list[Any]]:
    """Handlers a test registers; removed afterwards."""
    added: list[Any] = []
    yield added
    for handler in added:
        handlers.unregister(handler)


async def test_each_webhook_becomes_one_relay_message_in_the_uniform_envelope(
    hooks: Hooks,
) -> None:
    lag_before = (
        REGISTRY.get_sample_value(
            "gateway_webhooks_inbound_handling_lag_seconds_count", {"source": "lago"}
        )
        or 0.0
    )
    await _post_lago(hooks)
    await _post_stripe(hooks)

    await _process(hooks)

    messages = {m.id: m for m in await hooks.relay_messages()}
    lago_msg = messages[message_id("lago", "uk_1")]
    stripe_msg = messages[message_id("stripe", "evt_1")]
    assert len(messages) == 2
    assert (lago_msg.type, lago_msg.source) == ("invoice.created", "lago")
    assert (stripe_msg.type, stripe_msg.source) == ("payment_intent.succeeded", "stripe")
    envelope = orjson.loads(lago_msg.body)
    assert set(envelope) == {"id", "type", "source", "created_at", "data"}
    assert envelope["data"] == orjson.loads(lago_body())
    assert [r.status for r in await hooks.inbound()] == ["handled", "handled"]
    handled = await hooks.audit("webhooks.inbound.handled")
    assert [a.outcome for a in handled] == ["handled"]
    lag_after = REGISTRY.get_sample_value(
        "gateway_webhooks_inbound_handling_lag_seconds_count", {"source": "lago"}
    )
    assert lag_after == lag_before + 1


async def test_handling_the_same_webhook_twice_still_makes_one_message(hooks: Hooks) -> None:
    await _post_lago(hooks)
    database = hooks.gateway.runtime.database
    claimed = await store.claim_due(database, 10, LEASE_SECONDS)
    # A second worker claims the same rows after the first one's lease ran out.
    again = await store.claim_due(database, 10, LEASE_SECONDS, now=time.time() + LEASE_SECONDS + 1)

    await asyncio.gather(
        Processor(hooks.gateway.runtime).handle(claimed),
        Processor(hooks.gateway.runtime).handle(again),
    )
    await Processor(hooks.gateway.runtime).handle(claimed)

    assert [r.id for r in claimed] == [r.id for r in again]
    assert len(await hooks.relay_messages()) == 1
    assert [r.status for r in await hooks.inbound()] == ["handled"]


async def test_webhook_claimed_by_a_killed_worker_is_handled_after_the_lease(hooks: Hooks) -> None:
    await _post_stripe(hooks)
    runtime = hooks.gateway.runtime
    lost = await store.claim_due(runtime.database, 10, LEASE_SECONDS)  # the worker dies here

    assert await Processor(runtime).process_due() == 0
    assert await Processor(runtime).process_due(now=time.time() + LEASE_SECONDS + 1) == 1

    rows = await hooks.inbound()
    assert len(lost) == 1
    assert [(r.status, r.attempts) for r in rows] == [("handled", 2)]
    assert len(await hooks.relay_messages()) == 1


async def test_failing_handler_keeps_the_webhook_queued_until_it_succeeds(
    hooks: Hooks, registered: list[Any]
) -> None:
    calls: list[tuple[str, str, str]] = []

    async def collect(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        calls.append((inbound.source, inbound.provider_event_id, payload["type"]))
        if len(calls) == 1:
            raise RuntimeError("Stripe is slow today")

    async def invoices_only(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        raise AssertionError("not for Stripe's payment intents")

    registered += [
        handlers.register("stripe", "payment_intent.*", collect),
        handlers.register("lago", "invoice.*", invoices_only),
    ]
    await _post_stripe(hooks)
    runtime = hooks.gateway.runtime

    await Processor(runtime).process_due()
    after_failure = await hooks.inbound()
    messages_after_failure = await hooks.relay_messages()
    assert await Processor(runtime).process_due() == 0, "backing off"
    await Processor(runtime).process_due(now=time.time() + 600)

    assert [(r.status, r.attempts) for r in after_failure] == [("received", 1)]
    assert after_failure[0].last_error == "RuntimeError: Stripe is slow today"
    assert messages_after_failure == []
    assert calls == [("stripe", "evt_1", "payment_intent.succeeded")] * 2
    assert [r.status for r in await hooks.inbound()] == ["handled"]
    assert len(await hooks.relay_messages()) == 1


async def test_webhook_failing_every_attempt_is_parked_then_retried_on_request(
    hooks: Hooks, registered: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processor, "MAX_ATTEMPTS", 2)

    async def broken(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        raise ValueError("bad")

    registered.append(handlers.register("*", "*", broken))
    await _post_lago(hooks)
    runtime = hooks.gateway.runtime
    for _ in range(3):
        await Processor(runtime).process_due(now=time.time() + 7200)

    parked = await hooks.inbound()
    handlers.unregister(broken)
    async with runtime.database.engine.begin() as conn:
        requeued = await store.retry_failed(conn, None)
    await _process(hooks)

    assert [(r.status, r.attempts) for r in parked] == [("failed", 2)]
    assert requeued == [parked[0].id]
    assert [r.status for r in await hooks.inbound()] == ["handled"]
    assert len(await hooks.relay_messages()) == 1


async def test_one_unrelayable_webhook_does_not_hold_back_its_batch(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = processor.enqueue_message

    async def picky(conn: Any, **fields: Any) -> bool:
        if fields["data"].get("invoice", {}).get("lago_id") == "inv_2":
            raise ValueError("cannot relay this one")
        return await real(conn, **fields)

    monkeypatch.setattr(processor, "enqueue_message", picky)
    for index in range(1, 4):
        await _post_lago(hooks, f"inv_{index}", f"uk_{index}")

    await Processor(hooks.gateway.runtime).process_due()

    rows = await hooks.inbound()
    assert [r.status for r in rows] == ["handled", "received", "handled"]
    assert rows[1].last_error == "ValueError: cannot relay this one"
    assert len(await hooks.relay_messages()) == 2


async def test_worker_job_handles_webhooks_in_the_background(hooks: Hooks) -> None:
    stop = asyncio.Event()
    job = asyncio.create_task(processor.run(hooks.gateway.runtime, stop))
    try:
        await _post_lago(hooks)
        await _post_stripe(hooks)
        for _ in range(100):
            if len(await hooks.relay_messages()) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(job, 5)

    assert len(await hooks.relay_messages()) == 2
    assert [r.status for r in await hooks.inbound()] == ["handled", "handled"]


def test_message_ids_are_stable_and_per_source() -> None:
    assert message_id("lago", "uk_1") == message_id("lago", "uk_1")
    assert message_id("lago", "uk_1") != message_id("stripe", "uk_1")
    assert message_id("stripe", "evt_" + "x" * 250).startswith("msg_stripe_")
    assert len(message_id("stripe", "evt_" + "x" * 250)) <= 64
