"""Hosted Stripe pages: payment links for invoices, card set-up, and the billing portal.

A payment link is an attempt of kind ``checkout``: claimed as a row first, then the
Checkout Session is created under the attempt's idempotency key, like a charge. Its
``failure_code`` says why the customer must act when the gateway opened it on its own (it
then raises ``collection.action_required``); links opened on request carry none.

The outcomes recorded here never call for a payment link in turn: a link's own outcome, or
the charge a link replaces read back once cancelled, cannot move to ``requires_action``
(statuses only move forward). So they are recorded without that step (``ask_customer=None``).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from gateway.audit.service import record as audit
from gateway.billing.passthrough import segment
from gateway.collection import metrics, mode, service, states
from gateway.collection import store as rows
from gateway.collection.models import CANCELED, CHECKOUT, Collection
from gateway.collection.notices import raise_action_required
from gateway.customers.linking import StripeLinks
from gateway.db import Database
from gateway.errors import Conflict, NotFound, ValidationFailed, from_lago
from gateway.integrations.lago.client import LagoError
from gateway.integrations.stripe.client import StripeClient, StripeRejected
from gateway.invoices import service as invoices
from gateway.logging import get_logger
from gateway.runtime import Runtime

log = get_logger(__name__)
# A link about to expire is not handed out: the customer needs time to pay.
MIN_LINK_LIFE_SECONDS = 600.0
# Retries of one request within these windows get the same Stripe page (idempotency keys).
SETUP_WINDOW_SECONDS = 300
PORTAL_WINDOW_SECONDS = 60  # portal sessions are short-lived: a replay must still be fresh


def return_url(fallback: str, given: str | None, name: str) -> str:
    """The caller's URL, else ``fallback`` (``GATEWAY_COLLECTION_RETURN_URL``); Stripe needs one."""
    url = given or fallback
    if not url.startswith(("https://", "http://")):
        raise ValidationFailed(details={name: ["required: set GATEWAY_COLLECTION_RETURN_URL"]})
    return url


async def ask_customer(runtime: Runtime, row: Collection, *, actor: str) -> None:
    """An off-session charge needs the customer: cancel it for good, then open a link."""
    if row.payment_intent_id:
        try:
            await mode.stripe_of(runtime).cancel_payment_intent(
                row.payment_intent_id, idempotency_key=f"{row.idempotency_key}-cancel"
            )
        except StripeRejected as exc:
            log.info("collection.cancel_refused", collection_id=row.id, code=exc.code)
        fresh = await service.refresh_from_stripe(
            runtime, row, actor=actor, via="cancel", ask_customer=None
        )
        if fresh is not None and fresh.status in states.PAID:
            return
    await open_link(runtime, row.invoice_id, actor=actor, reason=row.failure_code or "action")


async def open_link(
    runtime: Runtime, invoice_id: str, *, actor: str, reason: str | None = None
) -> Collection:
    """An open payment link for the invoice: the current one, or a new attempt."""
    invoice = await invoices.fetch(runtime.lago, invoice_id)
    if not service.collectable(invoice) or states.amount_due(invoice) == 0:
        raise Conflict("the invoice is not payable", code="invoice_not_payable")
    async with runtime.database.session() as session:
        attempts = await rows.for_invoice(session, invoice_id)
    if states.paid(attempts) is not None:
        raise Conflict("the invoice is paid", code="invoice_already_paid")
    current = states.in_flight(attempts)
    if current is not None and current.kind == CHECKOUT:
        if current.payment_link is None:
            return await _link_and_reload(runtime, current, actor)
        if (current.link_expires_at or 0) > time.time() + MIN_LINK_LIFE_SECONDS:
            return current
        if not await close_link(runtime, current, actor=actor):
            raise Conflict("the customer is paying on the current link", code="payment_in_progress")
    elif current is not None:
        raise Conflict("a payment is being processed", code="payment_in_progress")
    customer = invoice.get("customer") or {}
    stripe_customer = await StripeLinks(runtime.database, runtime.stripe).ensure(
        str(customer.get("external_id")), actor=actor, email=customer.get("email")
    )
    async with runtime.database.session() as session:
        attempt = await rows.next_attempt_number(session, invoice_id)
        claimed = await service.claim_attempt(
            session, invoice, attempt, CHECKOUT, actor, stripe_customer, reason
        )
        await session.commit()
    if claimed is None:
        raise Conflict("another attempt started meanwhile", code="payment_in_progress")
    return await _link_and_reload(runtime, claimed, actor)


async def _link_and_reload(runtime: Runtime, row: Collection, actor: str) -> Collection:
    """Open the attempt's payment link; the attempt as stored afterwards."""
    await drive_payment_link(
        runtime.database,
        mode.stripe_of(runtime),
        row,
        actor=actor,
        fallback_url=runtime.settings.collection_return_url,
    )
    return await _reload(runtime.database, row)


async def _reload(database: Database, row: Collection) -> Collection:
    assert row.id is not None
    async with database.session() as session:
        fresh = await rows.by_id(session, row.id)
    assert fresh is not None
    return fresh


def _session_params(fallback_url: str, row: Collection) -> dict[str, Any]:
    url = return_url(fallback_url, None, "success_url")
    meta = service.metadata(row)
    return {
        "mode": "payment",
        "customer": row.stripe_customer_id,
        "client_reference_id": row.invoice_id,
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": row.currency.lower(),
                    "unit_amount": row.amount_cents,
                    "product_data": {"name": f"Invoice {row.invoice_number or row.invoice_id}"},
                },
            }
        ],
        # The card is kept for the next invoices, charged off-session.
        "payment_intent_data": {"metadata": meta, "setup_future_usage": "off_session"},
        "metadata": meta,
        "success_url": url,
        "cancel_url": url,
    }


async def drive_payment_link(
    database: Database, stripe: StripeClient, row: Collection, *, actor: str, fallback_url: str
) -> None:
    """Create the Checkout Session of a claimed link attempt and record it."""
    checkout = await stripe.create_checkout_session(
        _session_params(fallback_url, row), idempotency_key=row.idempotency_key
    )
    metrics.STRIPE_CALLS.labels(call="checkout.session.create").inc()
    async with database.session() as session:
        fresh = await rows.by_id(session, row.id or 0)
        if fresh is None or fresh.checkout_session_id:
            return
        conn = await session.connection()
        await rows.move(
            conn,
            fresh,
            fresh.status,
            checkout_session_id=checkout["id"],
            payment_link=checkout.get("url"),
            link_expires_at=float(checkout.get("expires_at") or time.time() + 86400),
            claimed_until=None,
        )
        audit(
            session,
            actor=actor,
            action="collection.payment_link",
            outcome="opened",
            target=fresh.invoice_id,
            upstream="stripe",
            detail={"attempt": fresh.attempt, "reason": fresh.failure_code},
        )
        if fresh.failure_code:
            await raise_action_required(conn, session, fresh, fresh.failure_code)
        await session.commit()
    metrics.PAYMENT_LINKS.inc()


async def close_link(runtime: Runtime, row: Collection, *, actor: str) -> bool:
    """Expire an open link before another attempt; False if the customer paid on it."""
    stripe = mode.stripe_of(runtime)
    if row.checkout_session_id is None:
        await service.record(
            runtime,
            row.id,
            states.StripeOutcome(CANCELED, row.failure_code),
            actor=actor,
            via="close",
            ask_customer=None,
        )
        return True
    try:
        session = await stripe.expire_checkout_session(
            row.checkout_session_id, idempotency_key=expire_key(row.checkout_session_id)
        )
    except StripeRejected:
        session = await stripe.retrieve_checkout_session(row.checkout_session_id)
    fresh = await settle_session(runtime, session, actor=actor, via="close")
    return fresh is None or fresh.status == CANCELED


async def settle_session(
    runtime: Runtime, session: dict[str, Any], *, actor: str, via: str
) -> Collection | None:
    """Apply a payment-mode Checkout Session's state (complete or expired) to its attempt."""
    if session.get("mode") != "payment":
        return None
    async with runtime.database.session() as db:
        row = await rows.by_checkout_session(db, session["id"])
    if row is None:
        return None
    if session.get("status") == "expired":
        outcome = states.StripeOutcome(CANCELED, "link_expired")
        return await service.record(
            runtime, row.id, outcome, actor=actor, via=via, ask_customer=None
        )
    intent_id = session.get("payment_intent")
    if session.get("status") != "complete" or not intent_id:
        return row
    intent = await mode.stripe_of(runtime).retrieve_payment_intent(str(intent_id))
    return await service.record(
        runtime,
        row.id,
        states.outcome_of_payment_intent(intent),
        intent_id=intent["id"],
        actor=actor,
        via=via,
        ask_customer=None,
    )


async def _stripe_customer(runtime: Runtime, external_id: str, actor: str) -> str:
    """The linked Stripe customer of a customer Lago knows (404 otherwise)."""
    if external_id in (".", ".."):
        raise NotFound(code="customer_not_found")
    try:
        found = await runtime.lago.call("GET", f"/customers/{segment(external_id)}")
    except LagoError as exc:
        raise from_lago(exc) from exc
    customer = found.get("customer") or {}
    return await StripeLinks(runtime.database, runtime.stripe).ensure(
        external_id, actor=actor, email=customer.get("email")
    )


def expire_key(session_id: str) -> str:
    """Expiring a Checkout Session: once per session, whoever asks and however often."""
    return f"checkout-session-{session_id}-expire"


def _window_key(*parts: str, seconds: int) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]
    return f"{digest}-{int(time.time() // seconds)}"


async def setup_link(
    runtime: Runtime, external_id: str, *, success_url: str, cancel_url: str, actor: str
) -> dict[str, Any]:
    """Checkout in setup mode: the customer saves a card, which becomes their default."""
    customer = await _stripe_customer(runtime, external_id, actor)
    params = {
        "mode": "setup",
        "customer": customer,
        "payment_method_types": ["card"],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": {"external_customer_id": external_id},
        "setup_intent_data": {"metadata": {"external_customer_id": external_id}},
    }
    # Retries of one request within five minutes get the same page.
    window = _window_key(external_id, success_url, cancel_url, seconds=SETUP_WINDOW_SECONDS)
    key = f"setup-{window}"
    session = await mode.stripe_of(runtime).create_checkout_session(params, idempotency_key=key)
    await _audit_link(runtime.database, actor, "collection.setup_link", external_id)
    return {"id": session["id"], "url": session.get("url"), "expires_at": session.get("expires_at")}


async def portal_link(
    runtime: Runtime, external_id: str, *, return_to: str, actor: str
) -> dict[str, Any]:
    """A Stripe billing portal session for the customer."""
    customer = await _stripe_customer(runtime, external_id, actor)
    # One caller's retries within a minute get the same session, later requests a fresh one.
    window = _window_key(actor, external_id, customer, return_to, seconds=PORTAL_WINDOW_SECONDS)
    portal = await mode.stripe_of(runtime).create_portal_session(
        customer=customer, return_url=return_to, idempotency_key=f"portal-{window}"
    )
    await _audit_link(runtime.database, actor, "collection.portal_link", external_id)
    return {"id": portal["id"], "url": portal.get("url")}


async def _audit_link(database: Database, actor: str, action: str, external_id: str) -> None:
    async with database.session() as session:
        audit(
            session,
            actor=actor,
            action=action,
            outcome="opened",
            target=external_id,
            upstream="stripe",
            status=200,
        )
        await session.commit()
