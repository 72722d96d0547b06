"""Charging Lago invoices off-session through Stripe, and telling Lago the outcome."""

from __future__ import annotations

from sqlmodel import select

from gateway.audit.models import AuditEntry
from tests.collection.conftest import Harness


async def test_finalized_invoice_is_charged_and_lago_shows_it_paid(harness: Harness) -> None:
    stripe_customer = await harness.customer("acme")
    issued = harness.emulator.issue_invoice("acme", 4_250)

    await harness.settle()

    [intent] = harness.stripe.intents_for(issued["lago_id"])
    assert intent["status"] == "succeeded"
    assert (intent["amount"], intent["currency"], intent["customer"]) == (
        4_250,
        "usd",
        stripe_customer,
    )
    assert intent["metadata"]["lago_invoice_id"] == issued["lago_id"]
    create = [
        p for m, path, p in harness.stripe.requests if path == "/v1/payment_intents" and m == "POST"
    ]
    assert create[0]["off_session"] == "true" and create[0]["confirm"] == "true"
    assert harness.invoice(issued["lago_id"])["payment_status"] == "succeeded"
    [attempt] = await harness.attempts(issued["lago_id"])
    assert (attempt.status, attempt.lago_status, attempt.payment_intent_id) == (
        "succeeded",
        "succeeded",
        intent["id"],
    )
    assert attempt.idempotency_key == f"invoice-{issued['lago_id']}-attempt-1"
    async with harness.gw.runtime.database.session() as session:
        actions = (
            await session.exec(
                select(AuditEntry.action).where(AuditEntry.target == issued["lago_id"])
            )
        ).all()
    assert {
        "collection.attempt.claimed",
        "collection.attempt.succeeded",
        "collection.lago_sync",
    } <= set(actions)


async def test_zero_amount_invoice_is_marked_paid_without_stripe(harness: Harness) -> None:
    await harness.customer("acme")
    draft = harness.emulator.issue_invoice("acme", 0, status="draft")
    # A Lago that leaves zero invoices pending (this one was finalized by hand).
    harness.emulator.invoices[draft["lago_id"]]["status"] = "finalized"
    harness.emulator.webhooks_pending.clear()
    from gateway.collection import charger
    from gateway.invoices import service as invoices

    invoice = await invoices.fetch(harness.gw.runtime.lago, draft["lago_id"])
    await charger.start(harness.gw.runtime, invoice, actor="test")

    assert harness.invoice(draft["lago_id"])["payment_status"] == "succeeded"
    assert harness.stripe.payment_intents == {}
    assert await harness.attempts(draft["lago_id"]) == []


async def test_token_pack_credit_invoice_is_collected_and_settles_the_wallet(
    harness: Harness,
) -> None:
    await harness.customer("acme")
    lago = harness.gw.runtime.lago
    wallet = (
        await lago.call(
            "POST",
            "/wallets",
            json={
                "wallet": {
                    "external_customer_id": "acme",
                    "rate_amount": "1",
                    "currency": "USD",
                    "paid_credits": "25",
                    "name": "Tokens",
                }
            },
        )
    )["wallet"]
    [credit] = [i for i in harness.emulator.invoices.values() if i["invoice_type"] == "credit"]

    await harness.settle()

    [intent] = harness.stripe.intents_for(credit["lago_id"])
    assert (intent["status"], intent["amount"]) == ("succeeded", 2_500)
    assert harness.invoice(credit["lago_id"])["payment_status"] == "succeeded"
    assert float(harness.emulator.wallets[wallet["lago_id"]]["credits_balance"]) == 25.0


async def test_lago_collection_mode_runs_none_of_it(
    database_url: str, emulator: object, stripe: object
) -> None:
    from tests.collection.conftest import start_collecting

    found, manager = await start_collecting(
        database_url,
        emulator,
        stripe,
        collection="lago",  # type: ignore[arg-type]
    )
    try:
        await found.customer("acme")
        issued = found.emulator.issue_invoice("acme", 900)
        await found.settle()
        assert found.stripe.payment_intents == {}
        assert await found.attempts(issued["lago_id"]) == []
        assert found.invoice(issued["lago_id"])["payment_status"] == "pending"
    finally:
        await found.gw.client.aclose()
        await manager.__aexit__(None, None, None)
