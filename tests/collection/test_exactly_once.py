"""Never two successful charges for one invoice: a worker killed between the Stripe call
and its record, every Stripe event delivered twice and out of order, a forgotten key."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import pytest
from sqlalchemy import update

from gateway.collection import collector
from gateway.collection.models import Collection
from tests.collection.conftest import Harness

LATER = 200.0  # past the claim lease (60 s) and the inbox lease (120 s)


async def _killed_after_the_charge(harness: Harness, cents: int) -> dict[str, Any]:
    """Lago's webhook is handled; the worker dies once Stripe charged, before the record."""
    issued = harness.emulator.issue_invoice("acme", cents)
    reached, never = asyncio.Event(), asyncio.Event()

    async def crash_point(intent: dict[str, Any]) -> None:
        reached.set()
        await never.wait()

    harness.stripe.after_intent_created = crash_point
    await harness.emulator.deliver_webhooks(harness.gw.client)
    worker = asyncio.create_task(harness.process())
    await asyncio.wait_for(reached.wait(), 10)
    worker.cancel()  # killed: the PaymentIntent exists at Stripe, the gateway never heard
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    harness.stripe.after_intent_created = None
    [attempt] = await harness.attempts(issued["lago_id"])
    assert (attempt.status, attempt.payment_intent_id) == ("pending", None)
    assert harness.stripe.succeeded_charges(issued["lago_id"]) == 1
    return issued


@pytest.mark.parametrize("events_first", [False, True], ids=["redrive-first", "events-first"])
async def test_killed_worker_and_replayed_events_make_one_charge(
    harness: Harness, events_first: bool
) -> None:
    await harness.customer("acme")
    issued = await _killed_after_the_charge(harness, 7_700)
    events = harness.new_stripe_events()
    shuffle = random.Random(7)

    if events_first:
        late = events + events
        shuffle.shuffle(late)
        await harness.post_stripe(late)
        await harness.process()
    await collector.run_once(harness.gw.runtime, now=time.time() + LATER)  # another worker
    if not events_first:
        late = events + events
        shuffle.shuffle(late)
        await harness.post_stripe(late)
    await harness.settle(twice=True, shuffle=shuffle, now=time.time() + LATER)
    processor_later = await _process_leased(harness)

    assert len(harness.stripe.intents_for(issued["lago_id"])) == 1
    assert harness.stripe.succeeded_charges(issued["lago_id"]) == 1
    [attempt] = await harness.attempts(issued["lago_id"])
    assert (attempt.status, attempt.lago_status) == ("succeeded", "succeeded")
    assert harness.invoice(issued["lago_id"])["payment_status"] == "succeeded"
    assert processor_later >= 1  # the interrupted Lago webhook ran again, harmlessly
    updates = [
        w
        for w in harness.emulator.webhooks_sent
        if w.webhook_type == "invoice.payment_status_updated"
    ]
    assert len(updates) == 1


async def _process_leased(harness: Harness) -> int:
    from gateway.webhooks.processor import Processor
    from gateway.worker import WEBHOOK_HANDLERS

    handled = 0
    while count := await Processor(harness.gw.runtime, WEBHOOK_HANDLERS).process_due(
        now=time.time() + LATER
    ):
        handled += count
    await harness.settle(now=time.time() + LATER)
    return handled


async def test_stale_events_cannot_move_an_attempt_back(harness: Harness) -> None:
    await harness.customer("acme")
    issued = harness.emulator.issue_invoice("acme", 1_000)
    await harness.settle(stripe=False)
    events = harness.new_stripe_events()
    succeeded = [e for e in events if e["type"] == "payment_intent.succeeded"]
    stale = [
        dict(
            e,
            id=e["id"] + "_stale",
            type="payment_intent.payment_failed",
            data={"object": dict(e["data"]["object"], status="requires_payment_method")},
        )
        for e in succeeded
    ]

    await harness.post_stripe(list(reversed(events)) + stale)
    await harness.settle()

    [attempt] = await harness.attempts(issued["lago_id"])
    assert attempt.status == "succeeded"
    assert harness.invoice(issued["lago_id"])["payment_status"] == "succeeded"


async def test_stalled_attempt_older_than_stripes_key_memory_is_found_not_recharged(
    harness: Harness,
) -> None:
    await harness.customer("acme")
    issued = await _killed_after_the_charge(harness, 3_300)
    harness.new_stripe_events()
    # A day passes: Stripe has forgotten the idempotency key.
    harness.stripe._replays.clear()
    table = Collection.__table__  # type: ignore[attr-defined]
    async with harness.gw.runtime.database.engine.begin() as conn:
        await conn.execute(
            update(table).values(created_at=time.time() - 25 * 3600, claimed_until=time.time() - 10)
        )

    await collector.run_once(harness.gw.runtime)

    [intent] = harness.stripe.intents_for(issued["lago_id"])
    [attempt] = await harness.attempts(issued["lago_id"])
    assert (attempt.status, attempt.payment_intent_id) == ("succeeded", intent["id"])


async def test_a_second_payment_on_a_paid_invoice_is_refunded(harness: Harness) -> None:
    from gateway.collection import charger, states
    from gateway.collection import store as rows

    stripe_customer = await harness.customer("acme")
    issued = harness.emulator.issue_invoice("acme", 2_500)
    await harness.settle()
    # Should never happen: another attempt on the same invoice also gets paid.
    async with harness.gw.runtime.database.session() as session:
        invoice = harness.invoice(issued["lago_id"])
        second = rows.new_attempt(
            dict(invoice, payment_status="pending", total_due_amount_cents=2_500),
            2,
            kind="checkout",
            actor="test",
            lease_seconds=0,
            stripe_customer_id=stripe_customer,
        )
        session.add(second)
        await session.commit()
    method = harness.stripe.customers[stripe_customer]["invoice_settings"]["default_payment_method"]
    extra = harness.stripe._create_intent(
        {
            "amount": "2500",
            "currency": "usd",
            "customer": stripe_customer,
            "payment_method": method,
            "confirm": "true",
            "return_url": "https://shop.test/paid",  # on-session: Stripe needs one since 2023-08-16
            "metadata": {},
        }
    )

    await charger.record(
        harness.gw.runtime,
        second.id,
        states.outcome_of_payment_intent(extra),
        intent_id=extra["id"],
        actor="test",
    )

    [refund] = harness.stripe.refunds.values()
    assert (refund["payment_intent"], refund["amount"]) == (extra["id"], 2_500)
    first, _duplicate = await harness.attempts(issued["lago_id"])
    assert first.status == "succeeded" and first.refunded_amount_cents == 0
