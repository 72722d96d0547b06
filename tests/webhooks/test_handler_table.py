"""The gateway's webhook handler table: what it lists, and that the worker's processor runs
exactly those handlers (no registration happens anywhere else)."""

from __future__ import annotations

import asyncio

import orjson

from gateway import worker
from gateway.collection import handlers as collection
from gateway.meters import handlers as meters
from gateway.packs import handlers as packs
from gateway.webhooks.handlers import Handler
from gateway.webhooks.processor import handler_name
from tests.webhooks.conftest import (
    LAGO_PATH,
    STRIPE_PATH,
    Hooks,
    lago_body,
    lago_headers,
    stripe_event,
    stripe_header,
)

EXPECTED: dict[tuple[str, str], list[Handler]] = {
    ("lago", "invoice.created"): [collection.on_invoice_issued],
    ("lago", "invoice.paid_credit_added"): [collection.on_invoice_issued],
    ("lago", "invoice.one_off_created"): [collection.on_invoice_issued],
    ("lago", "invoice.voided"): [collection.on_invoice_settled],
    ("lago", "invoice.payment_status_updated"): [
        collection.on_invoice_settled,
        packs.on_credit_invoice,
    ],
    ("lago", "credit_note.created"): [collection.on_credit_note, packs.on_credit_note],
    ("lago", "wallet_transaction.updated"): [
        packs.on_wallet_transaction,
        packs.on_wallet_change,
    ],
    ("lago", "wallet_transaction.created"): [packs.on_wallet_change],
    ("lago", "wallet.updated"): [packs.on_wallet_change],
    ("lago", "subscription.started"): [meters.on_subscription],
    ("lago", "subscription.terminated"): [meters.on_subscription],
    ("stripe", "payment_intent.succeeded"): [collection.on_payment_intent],
    ("stripe", "payment_intent.payment_failed"): [collection.on_payment_intent],
    ("stripe", "checkout.session.completed"): [collection.on_checkout_session],
    ("stripe", "checkout.session.expired"): [collection.on_checkout_session],
    ("stripe", "setup_intent.succeeded"): [collection.on_setup_intent],
    ("stripe", "charge.refunded"): [collection.on_charge_refunded],
    ("stripe", "charge.refund.updated"): [collection.on_refund],
    ("stripe", "refund.updated"): [collection.on_refund],
    ("stripe", "charge.dispute.created"): [collection.on_dispute],
    ("stripe", "charge.dispute.closed"): [collection.on_dispute],
    # Nothing runs for these: relayed only.
    ("lago", "customer.created"): [],
    ("lago", "payment_intent.succeeded"): [],
    ("stripe", "invoice.created"): [],
    ("stripe", "setup_intent.created"): [],
    ("stripe", "customer.updated"): [],
}


def test_each_event_type_maps_to_the_expected_handlers() -> None:
    table = worker.WEBHOOK_HANDLERS

    found = {key: table.matching(*key) for key in EXPECTED}

    assert found == EXPECTED
    assert len(table.routes) == 19
    unused = [r for r in table.routes if not any(r.matches(*key) for key in EXPECTED)]
    assert unused == [], "every route of the table is checked above"


async def test_the_worker_processor_runs_exactly_the_handlers_of_the_table(hooks: Hooks) -> None:
    lago_types = ["invoice.created", "invoice.payment_status_updated", "customer.created"]
    for index, webhook_type in enumerate(lago_types):
        body = lago_body(webhook_type, lago_id=f"inv_{index}")
        answer = await hooks.client.post(
            LAGO_PATH, content=body, headers=lago_headers(body, f"uk_{index}")
        )
        assert answer.status_code == 200, answer.text
    stripe_types = ["payment_intent.succeeded", "charge.dispute.created", "customer.updated"]
    for index, event_type in enumerate(stripe_types):
        body = stripe_event(f"evt_{index}", event_type)
        answer = await hooks.client.post(
            STRIPE_PATH, content=body, headers={"Stripe-Signature": stripe_header(body)}
        )
        assert answer.status_code == 200, answer.text

    stop = asyncio.Event()
    job = asyncio.create_task(worker.process_webhooks(hooks.gateway.parts, stop))
    try:
        for _ in range(200):
            if {r.status for r in await hooks.inbound()} == {"handled"}:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(job, 5)

    rows = await hooks.rows(
        "SELECT source, event_type, status, handlers_done FROM inbound_webhooks ORDER BY id"
    )
    ran = {(r.source, r.event_type): sorted(orjson.loads(r.handlers_done or "[]")) for r in rows}
    assert {r.status for r in rows} == {"handled"}
    assert ran == {
        key: sorted(handler_name(h) for h in EXPECTED[key])
        for key in [("lago", t) for t in lago_types] + [("stripe", t) for t in stripe_types]
    }
