"""A credit note's refund is made once on Stripe whichever trigger comes first (the create
call or Lago's webhook, however often), and one on a token pack's invoice takes the pack's
unspent tokens back, bonus included, saying what it could not."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from gateway.collection import store
from gateway.db import utcnow
from gateway.packs import clawback, clawback_rows
from lago.emulator.customers import upsert_customer
from lago.emulator.wallets import top_up
from tests.billing.support import audit_rows
from tests.collection.conftest import Harness, harness, stripe
from tests.conftest import Gateway
from tests.packs.conftest import BUY, _stock, bonuses, pay, purchase_row, reconcile, rows, shop

__all__ = ["harness", "shop", "stripe"]


async def paid_invoice(harness: Harness, cents: int = 10_000) -> dict[str, Any]:
    await harness.customer("acme")
    issued = harness.emulator.issue_invoice("acme", cents)
    await harness.settle()
    assert harness.invoice(issued["lago_id"])["payment_status"] == "succeeded"
    return harness.invoice(issued["lago_id"])


async def create(gw: Gateway, invoice: dict[str, Any], **amounts: int) -> dict[str, Any]:
    """A credit note through the gateway, one item on the first fee for the whole amount."""
    total = sum(amounts.values())
    body = {
        "invoice_id": invoice["lago_id"],
        "reason": "product_unsatisfactory",
        "items": [{"fee_id": invoice["fees"][0]["lago_id"], "amount_cents": total}],
        **amounts,
    }
    response = await gw.client.post(
        "/api/v1/credit_notes",
        json={"credit_note": body},
        headers=await gw.headers("billing:write"),
    )
    assert response.status_code == 200, response.text
    note: dict[str, Any] = response.json()["credit_note"]
    return note


async def test_a_credit_note_made_through_the_gateway_is_refunded_once(harness: Harness) -> None:
    invoice = await paid_invoice(harness)

    note = await create(harness.gw, invoice, refund_amount_cents=2_500)

    [refund] = harness.stripe.refunds.values()  # at once, by the create call
    assert refund["amount"] == 2_500
    assert harness.emulator.credit_notes[note["lago_id"]]["refund_status"] == "succeeded"
    pending = list(harness.emulator.webhooks_pending)
    harness.emulator.webhooks_pending.extend(pending)  # Lago's webhook, sent twice
    await harness.settle()
    assert list(harness.stripe.refunds.values()) == [refund]
    async with harness.gw.runtime.database.session() as session:
        [stored] = await store.refunds(session, invoice_id=invoice["lago_id"])
    assert stored.idempotency_key == f"credit-note-{note['lago_id']}-refund"
    actions = [(r.action, r.outcome) for r in await audit_rows(harness.gw)]
    assert ("credit_notes.create", "success") in actions
    assert actions.count(("collection.refund.succeeded", "succeeded")) == 1


async def test_a_refund_interrupted_at_stripe_is_made_once_later(harness: Harness) -> None:
    invoice = await paid_invoice(harness)
    harness.stripe.unreachable_paths = {"/v1/refunds"}

    note = await create(harness.gw, invoice, refund_amount_cents=1_000)
    await harness.settle()  # the webhook finds the claim; the lease has not run out

    assert harness.stripe.refunds == {}
    harness.stripe.unreachable_paths = set()
    await harness.settle(now=time.time() + 120)  # the collector takes the claim over
    [refund] = harness.stripe.refunds.values()
    assert refund["amount"] == 1_000
    assert refund["metadata"]["lago_credit_note_id"] == note["lago_id"]
    assert harness.emulator.credit_notes[note["lago_id"]]["refund_status"] == "succeeded"


async def bought_and_paid(harness: Harness, customer: str) -> tuple[dict[str, Any], Any]:
    """A Medium pack (199.8 paid + 75.2 bonus = 275 tokens, 9.99 USD) bought, charged on
    Stripe, its bonus granted: the purchase and the paid credit invoice."""
    await _stock(harness.gw)
    await harness.customer(customer)
    response = await harness.gw.client.post(
        BUY.format(customer, "medium"), headers=await harness.gw.headers("billing:write")
    )
    assert response.status_code == 201, response.text
    bought: dict[str, Any] = response.json()["token_pack_purchase"]
    await harness.settle()
    assert harness.emulator.wallets[bought["lago_wallet_id"]]["credits_balance"] == "275.0"
    return bought, harness.invoice(bought["lago_invoice_id"])


def voids(gw: Gateway) -> list[tuple[str, str | None, str | None]]:
    """(credits, credit note, name) of every voided wallet transaction."""
    return [
        (t["credit_amount"], t["lago_credit_note_id"], t["name"])
        for t in gw.emulator.wallet_transactions.values()
        if t["transaction_status"] == "voided"
    ]


async def clawbacks(gw: Gateway) -> list[Any]:
    return await rows(gw, "SELECT * FROM pack_clawbacks")


async def test_a_refunded_pack_takes_back_its_tokens_bonus_included(harness: Harness) -> None:
    bought, invoice = await bought_and_paid(harness, "alice")

    note = await create(harness.gw, invoice, refund_amount_cents=999)
    await harness.settle()  # Lago's webhook: nothing more is taken

    wallet = harness.emulator.wallets[bought["lago_wallet_id"]]
    assert wallet["credits_balance"] == "0.0"
    assert sorted(voids(harness.gw)) == sorted(
        [
            ("199.8", note["lago_id"], None),  # Lago's own void of the refunded paid credits
            ("75.2", None, f"Token pack clawback ({note['lago_id']})"),
        ]
    )
    [refund] = harness.stripe.refunds.values()
    assert refund["amount"] == 999
    [row] = await clawbacks(harness.gw)
    assert (row.status, row.purchase_id, row.not_taken_back) == (
        "done",
        bought["purchase_id"],
        "0",
    )
    [audited] = await audit_rows(harness.gw, "packs.clawback")
    assert (audited.outcome, audited.target) == ("complete", "alice")
    assert audited.target_ids == [bought["purchase_id"], note["lago_id"]]
    assert audited.detail is not None
    assert (audited.detail["paid_credits_voided"], audited.detail["bonus_credits_voided"]) == (
        "199.8",
        "75.2",
    )
    [message] = await rows(
        harness.gw, "SELECT id, body FROM relay_messages WHERE type = 'packs.tokens.clawed_back'"
    )
    assert message.id == f"msg_gateway_packs_clawback_{note['lago_id']}"
    assert '"not_taken_back":"0"' in message.body


async def test_spent_tokens_are_not_taken_back_and_the_shortfall_is_said(
    harness: Harness,
) -> None:
    bought, invoice = await bought_and_paid(harness, "bob")
    wallet = harness.emulator.wallets[bought["lago_wallet_id"]]
    top_up(harness.emulator, wallet, {"voided_credits": "100"})  # 100 tokens spent: 175 left
    lago = harness.gw.runtime.lago
    body = {
        "invoice_id": invoice["lago_id"],
        "refund_amount_cents": 875,  # all Lago lets go: 175 credits x 0.05
        "items": [{"fee_id": invoice["fees"][0]["lago_id"], "amount_cents": 875}],
    }

    made = await lago.call("POST", "/credit_notes", json={"credit_note": body})  # in Lago
    await harness.settle()  # the webhook refunds and claws back

    note_id = made["credit_note"]["lago_id"]
    assert wallet["credits_balance"] == "0.0"
    [row] = await clawbacks(harness.gw)
    wanted = Decimal("75.2") * 875 / 999
    assert (row.paid_credits_voided, row.bonus_credits_voided) == ("175", "0")
    assert Decimal(row.not_taken_back) == wanted.quantize(Decimal("0.00001"), "ROUND_DOWN")
    [audited] = await audit_rows(harness.gw, "packs.clawback")
    assert (audited.outcome, audited.actor, audited.target_ids[1]) == (
        "partial",
        "webhook:lago",
        note_id,
    )
    assert [r["amount"] for r in harness.stripe.refunds.values()] == [875]


async def test_a_bonus_not_granted_yet_is_withdrawn(shop: Gateway) -> None:
    upsert_customer(shop.emulator, {"external_id": "carol", "currency": "USD"})
    response = await shop.client.post(
        BUY.format("carol", "medium"), headers=await shop.headers("billing:write")
    )
    assert response.status_code == 201, response.text
    bought = response.json()["token_pack_purchase"]
    await pay(shop, bought["lago_invoice_id"])  # paid; the bonus is still owed here
    invoice = shop.emulator.invoices[bought["lago_invoice_id"]]

    await create(shop, invoice, refund_amount_cents=999)
    await reconcile(shop, after=3600)

    row = await purchase_row(shop, bought["purchase_id"])
    assert (row.bonus_status, row.bonus_credits) == ("bonus_withdrawn", "0")
    assert bonuses(shop, bought["purchase_id"]) == []
    assert shop.emulator.wallets[bought["lago_wallet_id"]]["credits_balance"] == "0.0"
    [audited] = await audit_rows(shop, "packs.clawback")
    assert audited.outcome == "complete"
    assert audited.detail is not None and audited.detail["bonus"] == "withdrawn"


async def test_a_clawback_held_elsewhere_is_retried_and_made_once(shop: Gateway) -> None:
    upsert_customer(shop.emulator, {"external_id": "dave", "currency": "USD"})
    response = await shop.client.post(
        BUY.format("dave", "medium"), headers=await shop.headers("billing:write")
    )
    bought = response.json()["token_pack_purchase"]
    await pay(shop, bought["lago_invoice_id"])
    await reconcile(shop)  # the bonus is granted
    invoice = shop.emulator.invoices[bought["lago_invoice_id"]]
    body = {
        "invoice_id": invoice["lago_id"],
        "refund_amount_cents": 999,
        "items": [{"fee_id": invoice["fees"][0]["lago_id"], "amount_cents": 999}],
    }
    note = (await shop.runtime.lago.call("POST", "/credit_notes", json={"credit_note": body}))[
        "credit_note"
    ]
    database, lago = shop.runtime.database, shop.runtime.lago
    now = utcnow()
    held = {"credit_note_id": note["lago_id"], "purchase_id": bought["purchase_id"],
            "external_customer_id": "dave"}  # fmt: skip
    assert await clawback_rows.claim(database, held, now, now + timedelta(hours=1)) == "claimed"

    with pytest.raises(clawback.ClawbackBusy):  # a webhook handler fails: retried later
        await clawback.claw_back(database, lago, note, actor="webhook:lago", lease=60)
    await clawback_rows.release(database, note["lago_id"], utcnow())  # the holder gave up
    done = await clawback.claw_back(database, lago, note, actor="webhook:lago", lease=60)
    again = await clawback.claw_back(database, lago, note, actor="webhook:lago", lease=60)

    assert done is not None and (done.bonus_credits_voided, done.not_taken_back) == ("75.2", "0")
    assert again is None
    assert len([v for v in voids(shop) if v[2]]) == 1
    assert shop.emulator.wallets[bought["lago_wallet_id"]]["credits_balance"] == "0.0"
