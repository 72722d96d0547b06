"""Relayed on receipt, handled on its own: one relay message per inbound webhook, whatever the
gateway's handlers do; transient failures retry, permanent ones go dead and replay."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from gateway.errors import UpstreamUnavailable
from gateway.integrations.lago.client import LagoApiError, LagoUnavailable
from gateway.relay import subscribers
from gateway.webhooks import processor, store
from gateway.webhooks.failures import is_transient
from gateway.webhooks.inbox import message_id
from gateway.webhooks.models import InboundWebhook
from gateway.webhooks.processor import LEASE_SECONDS, Processor, handler_name
from gateway.worker import WEBHOOK_HANDLERS
from tests.webhooks.conftest import (
    LAGO_PATH,
    STRIPE_PATH,
    HandlerSet,
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


async def _subscribe(hooks: Hooks, pattern: str = "*") -> None:
    """A subscriber endpoint (never delivered to here: the sender does not run)."""
    async with hooks.gateway.runtime.database.session() as session:
        await subscribers.create_endpoint(
            session,
            url="http://127.0.0.1:9/billing",
            description="",
            filter_types=[pattern],
            enabled=True,
            allow_private=True,
        )
        await session.commit()


async def _deliveries(hooks: Hooks) -> list[Any]:
    return await hooks.rows(
        "SELECT d.message_id, d.status FROM relay_deliveries d ORDER BY d.message_id"
    )


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_each_webhook_is_relayed_on_receipt_in_the_uniform_envelope(hooks: Hooks) -> None:
    await _subscribe(hooks)
    await _post_lago(hooks)
    await _post_stripe(hooks)

    # Before any handling: the relay message and its delivery exist already.
    messages = {m.id: m for m in await hooks.relay_messages()}
    deliveries = await _deliveries(hooks)
    rows = await hooks.rows("SELECT status, relayed_at, received_at FROM inbound_webhooks")
    lago_msg = messages[message_id("lago", "uk_1")]
    stripe_msg = messages[message_id("stripe", "evt_1")]
    assert len(messages) == 2
    assert sorted(d.message_id for d in deliveries) == sorted(messages)
    assert [r.status for r in rows] == ["received", "received"]
    assert all(r.relayed_at == r.received_at for r in rows)
    assert (lago_msg.type, lago_msg.source) == ("invoice.created", "lago")
    assert (stripe_msg.type, stripe_msg.source) == ("payment_intent.succeeded", "stripe")
    envelope = orjson.loads(lago_msg.body)
    assert list(envelope) == ["id", "type", "source", "created_at", "data"]
    assert envelope["data"] == orjson.loads(lago_body())
    assert orjson.loads(stripe_msg.body)["data"] == orjson.loads(stripe_event())

    await _process(hooks)

    assert [r.status for r in await hooks.inbound()] == ["handled", "handled"]
    assert len(await hooks.relay_messages()) == 2


async def test_a_resent_webhook_is_stored_and_relayed_once(hooks: Hooks) -> None:
    await _subscribe(hooks)
    for _ in range(3):
        await _post_lago(hooks)

    assert len(await hooks.inbound()) == 1
    assert len(await hooks.relay_messages()) == 1
    assert len(await _deliveries(hooks)) == 1


async def test_handling_the_same_webhook_twice_still_makes_one_message(hooks: Hooks) -> None:
    await _post_lago(hooks)
    runtime = hooks.gateway.runtime
    first = Processor(runtime, WEBHOOK_HANDLERS)
    assert await first.step() == 1
    # A second worker claims the same row after the first one's lease ran out.
    second = Processor(runtime, WEBHOOK_HANDLERS)
    assert await second.step(now=time.time() + LEASE_SECONDS + 1) == 1
    await asyncio.gather(first.drain(), second.drain())

    rows = await hooks.inbound()
    assert [(r.status, r.attempts) for r in rows] == [("handled", 2)]
    assert len(await hooks.relay_messages()) == 1


async def test_webhook_claimed_by_a_killed_worker_is_handled_after_the_lease(
    hooks: Hooks, registered: HandlerSet
) -> None:
    calls: list[str] = []

    async def count(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        calls.append(inbound.provider_event_id)

    registered.add("stripe", "*", count)
    await _post_stripe(hooks)
    runtime = hooks.gateway.runtime
    lost = await store.claim_due(runtime.database, 10, LEASE_SECONDS)  # the worker dies here

    assert await Processor(runtime, registered.table).process_due() == 0
    assert (
        await Processor(runtime, registered.table).process_due(now=time.time() + LEASE_SECONDS + 1)
        == 1
    )

    rows = await hooks.inbound()
    assert len(lost) == 1
    assert calls == ["evt_1"]
    assert [(r.status, r.attempts) for r in rows] == [("handled", 2)]
    assert len(await hooks.relay_messages()) == 1


async def test_transient_failure_retries_on_a_schedule_and_reruns_only_the_failed_handler(
    hooks: Hooks, registered: HandlerSet
) -> None:
    await _subscribe(hooks)
    calls: list[str] = []

    async def flaky(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        calls.append("flaky")
        if calls.count("flaky") == 1:
            raise LagoUnavailable("connection refused")

    async def steady(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        calls.append("steady")

    async def invoices_only(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        raise AssertionError("not for Stripe's payment intents")

    registered.add("stripe", "payment_intent.*", flaky)
    registered.add("stripe", "payment_intent.*", steady)
    registered.add("lago", "invoice.*", invoices_only)
    transient_before = _sample(
        "gateway_webhooks_inbound_handle_failures_total", source="stripe", kind="transient"
    )
    await _post_stripe(hooks)
    runtime = hooks.gateway.runtime

    await Processor(runtime, registered.table).process_due()
    after_failure = await hooks.rows(
        "SELECT status, attempts, last_error, handlers_done, next_attempt_at FROM inbound_webhooks"
    )
    assert await Processor(runtime, registered.table).process_due() == 0, "backing off"
    await Processor(runtime, registered.table).process_due(now=time.time() + 600)

    assert [(r.status, r.attempts) for r in after_failure] == [("received", 1)]
    assert "LagoUnavailable: connection refused" in after_failure[0].last_error
    done = orjson.loads(after_failure[0].handlers_done)
    assert handler_name(steady) in done
    assert handler_name(flaky) not in done
    assert after_failure[0].next_attempt_at > time.time() + 1
    assert sorted(calls) == ["flaky", "flaky", "steady"]
    assert [r.status for r in await hooks.inbound()] == ["handled"]
    # Relayed on receipt, not once more after the handlers.
    assert len(await hooks.relay_messages()) == 1
    assert len(await _deliveries(hooks)) == 1
    assert (
        _sample("gateway_webhooks_inbound_handle_failures_total", source="stripe", kind="transient")
        == transient_before + 1
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (LagoApiError(404, {"status": 404, "code": "invoice_not_found"}), "invoice_not_found"),
        (LagoApiError(422, {"status": 422, "code": "validation_errors"}), "validation_errors"),
        (ValueError("not a UUID: inv_1"), "ValueError: not a UUID"),
        (KeyError("invoice"), "KeyError"),
    ],
)
async def test_permanent_failure_goes_dead_at_once_with_its_reason(
    hooks: Hooks, registered: HandlerSet, error: Exception, reason: str
) -> None:
    async def broken(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        raise error

    registered.add("lago", "invoice.created", broken)
    dead_before = _sample("gateway_webhooks_inbound_dead_total", source="lago")
    await _subscribe(hooks)
    await _post_lago(hooks)

    await Processor(hooks.gateway.runtime, registered.table).process_due()

    rows = await hooks.inbound()
    assert [(r.status, r.attempts) for r in rows] == [("dead", 1)]
    assert reason in rows[0].last_error
    assert len(await _deliveries(hooks)) == 1, "relayed all the same"
    assert _sample("gateway_webhooks_inbound_dead_total", source="lago") == dead_before + 1
    # Dead is final until a replay: no later pass runs it again.
    assert (
        await Processor(hooks.gateway.runtime, registered.table).process_due(
            now=time.time() + 10**6
        )
        == 0
    )


async def test_collection_handler_refusing_a_non_uuid_invoice_goes_dead_and_still_relays(
    hooks: Hooks, registered: HandlerSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.collection import mode

    monkeypatch.setattr(mode, "enabled", lambda runtime: True)
    # The gateway's table runs collection's on_invoice_issued for invoice.created.
    await _subscribe(hooks, "invoice.*")
    await _post_lago(hooks, lago_id="not-a-uuid")

    await Processor(hooks.gateway.runtime, registered.table).process_due()

    rows = await hooks.inbound()
    assert [(r.status, r.attempts) for r in rows] == [("dead", 1)]
    assert "invoice_not_found" in rows[0].last_error or "NotFound" in rows[0].last_error
    assert [d.status for d in await _deliveries(hooks)] == ["pending"]


async def test_transient_failure_every_time_goes_dead_after_the_last_attempt_then_replays(
    hooks: Hooks, registered: HandlerSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processor, "MAX_ATTEMPTS", 3)
    fixed = False

    async def down(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        if not fixed:
            raise LagoApiError(503, {"status": 503, "error": "Service Unavailable"})

    registered.add("*", "*", down)
    await _post_lago(hooks)
    runtime = hooks.gateway.runtime
    statuses = []
    for _ in range(4):
        await Processor(runtime, registered.table).process_due(now=time.time() + 7200)
        row = (await hooks.inbound())[0]
        statuses.append((row.status, row.attempts))

    dead = await hooks.inbound()
    fixed = True
    async with runtime.database.engine.begin() as conn:
        requeued = await store.replay_dead(conn, None)
    await _process(hooks)

    assert statuses == [("received", 1), ("received", 2), ("dead", 3), ("dead", 3)]
    assert dead[0].last_error.startswith("gave up after 3 attempts: ")
    assert requeued == [dead[0].id]
    assert [r.status for r in await hooks.inbound()] == ["handled"]
    assert len(await hooks.relay_messages()) == 1


async def test_a_slow_handler_delays_no_other_webhook(hooks: Hooks, registered: HandlerSet) -> None:
    release = asyncio.Event()
    handled: list[str] = []

    async def slow_for_one(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        if inbound.provider_event_id == "uk_slow":
            await release.wait()
        handled.append(inbound.provider_event_id)

    registered.add("lago", "*", slow_for_one)
    await _post_lago(hooks, "inv_slow", "uk_slow")
    for index in range(10):
        await _post_lago(hooks, f"inv_{index}", f"uk_{index}")
    runtime = hooks.gateway.runtime
    stop = asyncio.Event()
    job = asyncio.create_task(processor.run(runtime, stop, registered.table))
    try:
        started = time.monotonic()
        while len(handled) < 10 and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)
        for _ in range(100):
            statuses = [r.status for r in await hooks.inbound()]
            if statuses.count("handled") == 10:
                break
            await asyncio.sleep(0.02)
        waited = time.monotonic() - started
        release.set()
        for _ in range(100):
            if all(r.status == "handled" for r in await hooks.inbound()):
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(job, 10)

    assert sorted(handled[:10]) == sorted(f"uk_{i}" for i in range(10))
    assert statuses == ["received"] + ["handled"] * 10
    assert waited < 2.0
    assert [r.status for r in await hooks.inbound()] == ["handled"] * 11


async def test_a_hanging_handler_times_out_and_is_retried_later(
    hooks: Hooks, registered: HandlerSet
) -> None:
    async def hang(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    registered.add("lago", "*", hang)
    await _post_lago(hooks)

    await Processor(hooks.gateway.runtime, registered.table, handler_timeout=0.05).process_due()

    rows = await hooks.inbound()
    assert [(r.status, r.attempts) for r in rows] == [("received", 1)]
    assert "did not finish in time" in rows[0].last_error


async def test_one_row_the_database_refuses_to_settle_does_not_hold_back_the_others(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.settle

    async def picky(conn: Any, settlements: list[store.Settlement], now: float) -> None:
        if any(s.id == 2 for s in settlements):
            raise RuntimeError("cannot settle row 2")
        await real(conn, settlements, now)

    monkeypatch.setattr(store, "settle", picky)
    for index in range(1, 4):
        await _post_lago(hooks, f"inv_{index}", f"uk_{index}")

    await Processor(hooks.gateway.runtime, WEBHOOK_HANDLERS).process_due()

    assert [(r.id, r.status) for r in await hooks.inbound()] == [
        (1, "handled"),
        (2, "received"),
        (3, "handled"),
    ]


async def test_rows_stored_before_relay_on_receipt_are_relayed_once_on_start(
    hooks: Hooks,
) -> None:
    await _post_lago(hooks, "inv_1", "uk_1")
    await _post_lago(hooks, "inv_2", "uk_2")
    await _post_lago(hooks, "inv_3", "uk_3")
    async with hooks.gateway.runtime.database.engine.begin() as conn:
        # As an older gateway left them: waiting and dead rows never relayed.
        await conn.execute(text("DELETE FROM relay_messages"))
        await conn.execute(
            text("UPDATE inbound_webhooks SET relayed_at = NULL, status = 'dead' WHERE id = 2")
        )
        await conn.execute(text("UPDATE inbound_webhooks SET relayed_at = NULL WHERE id = 1"))

    await Processor(hooks.gateway.runtime, WEBHOOK_HANDLERS).process_due()
    await Processor(hooks.gateway.runtime, WEBHOOK_HANDLERS).process_due()

    ids = sorted(m.id for m in await hooks.relay_messages())
    assert ids == sorted([message_id("lago", "uk_1"), message_id("lago", "uk_2")])
    rows = await hooks.rows("SELECT relayed_at FROM inbound_webhooks ORDER BY id")
    assert all(r.relayed_at is not None for r in rows)


async def test_worker_job_handles_webhooks_in_the_background(hooks: Hooks) -> None:
    stop = asyncio.Event()
    job = asyncio.create_task(processor.run(hooks.gateway.runtime, stop, WEBHOOK_HANDLERS))
    try:
        await _post_lago(hooks)
        await _post_stripe(hooks)
        for _ in range(100):
            if [r.status for r in await hooks.inbound()] == ["handled", "handled"]:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(job, 5)

    assert len(await hooks.relay_messages()) == 2
    assert [r.status for r in await hooks.inbound()] == ["handled", "handled"]


async def test_dead_webhooks_are_listed_and_replayed_through_the_api(
    hooks: Hooks, registered: HandlerSet
) -> None:
    broken = True

    async def handler(runtime: Any, inbound: InboundWebhook, payload: dict[str, Any]) -> None:
        if broken:
            raise LagoApiError(404, {"status": 404, "code": "customer_not_found"})

    registered.add("lago", "*", handler)
    await _post_lago(hooks, "inv_1", "uk_1")
    await _post_lago(hooks, "inv_2", "uk_2")
    await Processor(hooks.gateway.runtime, registered.table).process_due()
    admin = await hooks.gateway.headers("admin")
    client = hooks.client

    listed = await client.get("/gateway/webhooks/inbound?status=dead", headers=admin)
    page = await client.get("/gateway/webhooks/inbound?status=dead&limit=1", headers=admin)
    rest = await client.get(
        f"/gateway/webhooks/inbound?status=dead&limit=1&cursor={page.json()['next_cursor']}",
        headers=admin,
    )
    one_id = listed.json()["webhooks"][0]["id"]
    broken = False
    replayed = await client.post(f"/gateway/webhooks/inbound/{one_id}/replay", headers=admin)
    again = await client.post(f"/gateway/webhooks/inbound/{one_id}/replay", headers=admin)
    missing = await client.post("/gateway/webhooks/inbound/999/replay", headers=admin)
    await Processor(hooks.gateway.runtime, registered.table).process_due()
    after = await client.get(f"/gateway/webhooks/inbound/{one_id}", headers=admin)
    audit = await hooks.audit("webhooks.inbound.replay")

    assert listed.status_code == 200, listed.text
    webhooks = listed.json()["webhooks"]
    assert [w["provider_event_id"] for w in webhooks] == ["uk_1", "uk_2"]
    assert webhooks[0]["status"] == "dead"
    assert "customer_not_found" in webhooks[0]["last_error"]
    assert webhooks[0]["relayed_at"] is not None
    assert "body" not in webhooks[0]
    assert [w["provider_event_id"] for w in rest.json()["webhooks"]] == ["uk_2"]
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["webhook"]["status"] == "received"
    assert again.status_code == 409
    assert again.json()["code"] == "webhook_not_dead"
    assert missing.status_code == 404
    assert after.json()["webhook"]["status"] == "handled"
    assert [a.target for a in audit] == [str(one_id)]
    assert len(await hooks.relay_messages()) == 2


async def test_inbound_webhook_api_needs_the_admin_scope(hooks: Hooks) -> None:
    reader = await hooks.gateway.headers("billing:read")

    listed = await hooks.client.get("/gateway/webhooks/inbound", headers=reader)
    anonymous = await hooks.client.get("/gateway/webhooks/inbound")
    bad_status = await hooks.client.get(
        "/gateway/webhooks/inbound?status=failed", headers=await hooks.gateway.headers("admin")
    )

    assert listed.status_code == 403
    assert anonymous.status_code == 401
    assert bad_status.status_code == 422
    assert "status" in bad_status.text


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (LagoUnavailable("timed out"), True),
        (LagoApiError(503, {}), True),
        (LagoApiError(429, {}), True),
        (LagoApiError(404, {}), False),
        (LagoApiError(400, {}), False),
        (UpstreamUnavailable("Lago answered 502"), True),
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        (ValueError("bad id"), False),
        (AttributeError("a bug"), False),
    ],
)
def test_failures_are_sorted_into_transient_and_permanent(
    error: Exception, transient: bool
) -> None:
    assert is_transient(error) is transient


def test_stripe_failures_are_sorted_too() -> None:
    from gateway.integrations.stripe.client import StripeRejected, StripeUnavailable

    assert is_transient(StripeUnavailable("connection reset")) is True
    assert (
        is_transient(StripeRejected(400, "No such payment_intent", code="resource_missing"))
        is False
    )


def test_message_ids_are_stable_and_per_source() -> None:
    assert message_id("lago", "uk_1") == message_id("lago", "uk_1")
    assert message_id("lago", "uk_1") != message_id("stripe", "uk_1")
    assert message_id("stripe", "evt_" + "x" * 250).startswith("msg_stripe_")
    assert len(message_id("stripe", "evt_" + "x" * 250)) <= 64


async def test_a_row_the_database_refuses_fails_only_its_own_request(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import IntegrityError

    from gateway.audit.service import entry
    from gateway.webhooks import inbox
    from gateway.webhooks.inbox import InboxWriter, Incoming

    real = inbox.write
    groups: list[int] = []

    async def picky(conn: Any, items: list[Incoming], *, is_postgres: bool) -> Any:
        groups.append(len(items))
        if any(item.provider_event_id == "uk_bad" for item in items):
            raise IntegrityError("INSERT", {}, Exception("refused"))
        return await real(conn, items, is_postgres=is_postgres)

    monkeypatch.setattr(inbox, "write", picky)
    writer = InboxWriter(hooks.gateway.runtime.database)

    def item(key: str) -> Incoming:
        line = entry(actor="webhook:lago", action="webhooks.inbound.received", outcome="stored")
        body = orjson.dumps({"webhook_type": "invoice.created", "n": key}).decode()
        return Incoming("lago", key, "invoice.created", body, key.rjust(64, "0"), line)

    keys = ["uk_1", "uk_2", "uk_bad", "uk_4"]
    results = await asyncio.gather(*(writer.store(item(k)) for k in keys), return_exceptions=True)

    assert results[:2] == [True, True] and results[3] is True
    assert isinstance(results[2], IntegrityError)
    assert groups[0] == 4, "written as one group first"
    assert sorted(r.provider_event_id for r in await hooks.inbound()) == ["uk_1", "uk_2", "uk_4"]
    assert len(await hooks.relay_messages()) == 3


async def test_a_nul_escape_in_a_verified_body_is_stored_and_relayed(hooks: Hooks) -> None:
    body = b'{"webhook_type":"invoice.created","invoice":{"lago_id":"inv_1","note":"a\\u0000b"}}'
    response = await hooks.client.post(LAGO_PATH, content=body, headers=lago_headers(body, "uk_n"))

    assert response.status_code == 200, response.text
    (message,) = await hooks.relay_messages()
    assert orjson.loads(message.body)["data"]["invoice"]["note"] == "a\x00b"
