"""What collection does with inbound webhooks (listed in ``gateway.worker.WEBHOOK_HANDLERS``).

Lago says an invoice exists, was voided or paid, or a credit note refunds; Stripe says a
PaymentIntent, Checkout Session, SetupIntent, refund or dispute changed. Stripe's events
are only pointers here: the object's current state is read back from Stripe, so a stale,
duplicated or out-of-order event cannot move an attempt anywhere but forward.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.audit.service import record as audit
from gateway.collection import charger, checkout, mode, refunds, service, states
from gateway.collection import store as rows
from gateway.collection.models import CHECKOUT, Collection
from gateway.customers import store as links
from gateway.db import Database
from gateway.invoices import service as invoices
from gateway.logging import get_logger
from gateway.runtime import Runtime
from gateway.webhooks.models import InboundWebhook

log = get_logger(__name__)
LAGO_ACTOR = "webhook:lago"
STRIPE_ACTOR = "webhook:stripe"


def _object(payload: dict[str, Any]) -> dict[str, Any]:
    obj = (payload.get("data") or {}).get("object")
    return obj if isinstance(obj, dict) else {}


async def on_invoice_issued(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """A new Lago invoice: collect it (its current state is read from Lago first)."""
    lago_id = (payload.get("invoice") or {}).get("lago_id")
    if not lago_id or not mode.enabled(runtime):
        return
    invoice = await invoices.fetch(runtime.lago, str(lago_id))
    await charger.start(runtime, invoice, actor=LAGO_ACTOR)


async def on_invoice_settled(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """Voided, or paid some other way: stop dunning and close any open payment link."""
    invoice = payload.get("invoice") or {}
    done = invoice.get("status") == "voided" or invoice.get("payment_status") == "succeeded"
    if not done or not mode.enabled(runtime):
        return
    async with runtime.database.session() as session:
        attempts = await rows.for_invoice(session, str(invoice.get("lago_id")))
        await rows.end_dunning(await session.connection(), str(invoice.get("lago_id")))
        await session.commit()
    current = states.in_flight(attempts)
    if current is not None and current.kind == CHECKOUT:
        await checkout.close_link(runtime, current, actor=LAGO_ACTOR)


async def on_credit_note(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """A credit note with a refund amount: refund it on the Stripe payment."""
    note = payload.get("credit_note") or {}
    if note.get("lago_id"):
        await refunds.refund_credit_note(runtime, note, actor=LAGO_ACTOR)


async def _attempt_of(database: Database, intent: dict[str, Any]) -> Collection | None:
    async with database.session() as session:
        row = await rows.by_payment_intent(session, str(intent.get("id")))
        if row is not None:
            return row
        # Not recorded yet (the webhook beat the response): the metadata names the attempt.
        meta = intent.get("metadata") or {}
        row_id = str(meta.get("gateway_collection_id") or "")
        if not row_id.isdigit():
            return None
        row = await rows.by_id(session, int(row_id))
    if row is None or row.invoice_id != meta.get("lago_invoice_id"):
        return None
    return row


async def on_payment_intent(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """Any PaymentIntent event of ours: apply the PaymentIntent as Stripe has it now."""
    if not mode.enabled(runtime):
        return
    row = await _attempt_of(runtime.database, _object(payload))
    if row is None:
        return
    intent = await mode.stripe_of(runtime).retrieve_payment_intent(str(_object(payload)["id"]))
    await charger.record(
        runtime,
        row.id,
        states.outcome_of_payment_intent(intent),
        intent_id=intent["id"],
        actor=STRIPE_ACTOR,
        via=inbound.event_type,
    )


async def on_checkout_session(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """A payment link completed or expired (read back from Stripe)."""
    session_id = _object(payload).get("id")
    if not session_id or _object(payload).get("mode") != "payment" or not mode.enabled(runtime):
        return
    session = await mode.stripe_of(runtime).retrieve_checkout_session(str(session_id))
    await checkout.settle_session(runtime, session, actor=STRIPE_ACTOR, via=inbound.event_type)


async def on_setup_intent(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """A card saved (Checkout in setup mode): it becomes the customer's default, and
    the customer's scheduled retries are brought forward."""
    if not mode.enabled(runtime) or not _object(payload).get("id"):
        return
    stripe = mode.stripe_of(runtime)
    intent = await stripe.retrieve_setup_intent(str(_object(payload)["id"]))
    customer, method = intent.get("customer"), intent.get("payment_method")
    if intent.get("status") != "succeeded" or not customer or not method:
        return
    link = await links.find_by_stripe(runtime.database, str(customer))
    if link is None:
        return
    await stripe.set_default_payment_method(
        str(customer), str(method), idempotency_key=f"setup-intent-{intent['id']}-default"
    )
    async with runtime.database.session() as session:
        await rows.bring_retries_forward(await session.connection(), link.external_id, time.time())
        audit(
            session,
            actor=STRIPE_ACTOR,
            action="collection.default_payment_method",
            outcome="updated",
            target=link.external_id,
            upstream="stripe",
        )
        await session.commit()
    runtime.database.wake(service.DUE).set()


async def on_charge_refunded(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    intent_id = _object(payload).get("payment_intent")
    if intent_id and mode.enabled(runtime):
        await refunds.refunded_amount(
            runtime.database, mode.stripe_of(runtime), str(intent_id), actor=STRIPE_ACTOR
        )


async def on_refund(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    refund = _object(payload)
    if refund.get("object") != "refund" or not mode.enabled(runtime):
        return
    row = await refunds.by_stripe_refund(runtime.database, str(refund.get("id")))
    if row is not None:
        await refunds.apply_refund(
            runtime.database,
            runtime.lago,
            row.id,
            str(refund.get("status")),
            refund["id"],
            actor=STRIPE_ACTOR,
        )


async def on_dispute(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    dispute_id = _object(payload).get("id")
    if dispute_id and mode.enabled(runtime):
        await refunds.dispute_changed(runtime, str(dispute_id), actor=STRIPE_ACTOR)
