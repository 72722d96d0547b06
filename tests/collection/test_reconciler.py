"""Reconciliation: what lost webhooks would have said is found by asking Lago and Stripe."""

from __future__ import annotations

import time

from sqlmodel import select

from gateway.audit.models import AuditEntry
from gateway.collection import collector, reconciler
from tests.collection.conftest import Harness
from tests.collection.stripe_fake import AUTHENTICATE, PROCESSING


async def _reconcile_audit(harness: Harness) -> list[AuditEntry]:
    async with harness.gw.runtime.database.session() as session:
        result = await session.exec(
            select(AuditEntry).where(AuditEntry.action == "collection.reconcile")
        )
        return list(result.all())


async def test_invoices_whose_lago_webhook_was_lost_are_collected(harness: Harness) -> None:
    await harness.customer("acme")
    await harness.customer("globex")
    lost = [harness.emulator.issue_invoice(c, 1_200) for c in ("acme", "globex")]
    harness.emulator.webhooks_pending.clear()  # a Lago webhook outage: never delivered
    harness.emulator.issue_invoice("acme", 0)  # paid at once by Lago: nothing to do

    repaired = await reconciler.run_once(harness.gw.runtime)
    await harness.settle()

    assert repaired == {"lago_invoice": 2}
    for invoice in lost:
        assert harness.invoice(invoice["lago_id"])["payment_status"] == "succeeded"
    [audit] = await _reconcile_audit(harness)
    assert audit.detail == {"lago_invoice": 2}
    assert await reconciler.run_once(harness.gw.runtime) == {}  # nothing left to repair


async def test_payments_whose_stripe_webhook_was_lost_are_settled(harness: Harness) -> None:
    await harness.customer("acme", PROCESSING)
    issued = harness.emulator.issue_invoice("acme", 6_000)
    await harness.settle()
    [attempt] = await harness.attempts(issued["lago_id"])
    assert attempt.status == "processing"

    harness.stripe.finish_processing(attempt.payment_intent_id)
    harness.new_stripe_events()  # Stripe's webhooks never arrive
    repaired = await reconciler.run_once(harness.gw.runtime)
    await harness.settle(stripe=False)

    assert repaired == {"stripe_payment": 1}
    [attempt] = await harness.attempts(issued["lago_id"])
    assert attempt.status == "succeeded"
    assert harness.invoice(issued["lago_id"])["payment_status"] == "succeeded"


async def test_a_payment_link_lost_to_an_outage_is_opened_later(harness: Harness) -> None:
    await harness.customer("acme", AUTHENTICATE)
    issued = harness.emulator.issue_invoice("acme", 2_000)
    harness.stripe.unreachable_paths.add("/v1/checkout/sessions")

    await harness.settle()
    _first, link = await harness.attempts(issued["lago_id"])
    assert (link.kind, link.status, link.payment_link) == ("checkout", "pending", None)

    harness.stripe.unreachable_paths.clear()
    await collector.run_once(harness.gw.runtime, now=time.time() + 120)  # the claim lapsed

    _first, link = await harness.attempts(issued["lago_id"])
    assert link.payment_link is not None
    assert len(harness.stripe.checkout_sessions) == 1


async def test_a_customer_never_asked_because_of_a_crash_gets_a_link(harness: Harness) -> None:
    await harness.customer("acme", AUTHENTICATE)
    issued = harness.emulator.issue_invoice("acme", 2_000)
    harness.stripe.unreachable_paths.add(r"/v1/payment_intents/.+/cancel")  # then it crashed
    await harness.settle()
    [attempt] = await harness.attempts(issued["lago_id"])
    assert attempt.status == "requires_action"

    harness.stripe.unreachable_paths.clear()
    repaired = await reconciler.run_once(harness.gw.runtime)

    assert repaired == {"payment_link_opened": 1}
    _first, link = await harness.attempts(issued["lago_id"])
    assert link.kind == "checkout" and link.payment_link is not None
