"""Credit notes refunded on Stripe once; refunds and disputes recorded on the attempt."""

from __future__ import annotations

from typing import Any

from tests.collection.conftest import Harness


async def _paid_invoice(harness: Harness, cents: int = 10_000) -> dict[str, Any]:
    await harness.customer("acme")
    issued = harness.emulator.issue_invoice("acme", cents)
    await harness.settle()
    assert harness.invoice(issued["lago_id"])["payment_status"] == "succeeded"
    return harness.invoice(issued["lago_id"])


async def _credit_note(harness: Harness, invoice: dict[str, Any], refund: int) -> dict[str, Any]:
    note: dict[str, Any] = await harness.gw.runtime.lago.call(
        "POST",
        "/credit_notes",
        json={
            "credit_note": {
                "invoice_id": invoice["lago_id"],
                "reason": "product_unsatisfactory",
                "refund_amount_cents": refund,
                "credit_amount_cents": 0,
                "items": [{"fee_id": invoice["fees"][0]["lago_id"], "amount_cents": refund}],
            }
        },
    )
    return note["credit_note"]


async def test_credit_note_refund_is_made_once_on_the_paid_payment(harness: Harness) -> None:
    invoice = await _paid_invoice(harness)
    note = await _credit_note(harness, invoice, 2_500)
    duplicate = list(harness.emulator.webhooks_pending)
    harness.emulator.webhooks_pending.extend(duplicate)  # Lago retried it: sent twice

    await harness.settle()

    [refund] = harness.stripe.refunds.values()
    [attempt] = await harness.attempts(invoice["lago_id"])
    assert (refund["amount"], refund["payment_intent"]) == (2_500, attempt.payment_intent_id)
    assert refund["metadata"]["lago_credit_note_id"] == note["lago_id"]
    assert attempt.refunded_amount_cents == 2_500
    assert attempt.status == "succeeded"  # partly refunded
    async with harness.gw.runtime.database.session() as session:
        from gateway.collection import store

        [stored] = await store.refunds(session, invoice_id=invoice["lago_id"])
    assert (stored.status, stored.stripe_refund_id) == ("succeeded", refund["id"])
    assert stored.idempotency_key == f"credit-note-{note['lago_id']}-refund"
    # Lago learned the refund's status (PUT /credit_notes/{id}).
    assert harness.emulator.credit_notes[note["lago_id"]]["refund_status"] == "succeeded"


async def test_full_refund_moves_the_attempt_to_refunded(harness: Harness) -> None:
    invoice = await _paid_invoice(harness, 4_000)
    await _credit_note(harness, invoice, 4_000)

    await harness.settle()

    [attempt] = await harness.attempts(invoice["lago_id"])
    assert (attempt.status, attempt.refunded_amount_cents) == ("refunded", 4_000)


async def test_dispute_is_recorded_on_the_attempt(harness: Harness) -> None:
    invoice = await _paid_invoice(harness)
    [attempt] = await harness.attempts(invoice["lago_id"])

    dispute = harness.stripe.open_dispute(attempt.payment_intent_id)
    await harness.settle()
    harness.stripe.close_dispute(dispute, "won")
    await harness.settle()

    [attempt] = await harness.attempts(invoice["lago_id"])
    assert (attempt.status, attempt.dispute_id, attempt.dispute_status) == (
        "disputed",
        dispute,
        "won",
    )
    assert harness.invoice(invoice["lago_id"])["payment_status"] == "succeeded"
