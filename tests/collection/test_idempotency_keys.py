"""Every POST to Stripe carries an idempotency key derived from local state, never the SDK's
random one: run again, the same local operation sends the same key and Stripe replays."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.collection import charger, checkout, mode, refunds
from gateway.collection import store as rows
from gateway.customers.linking import StripeLinks
from gateway.errors import Conflict
from lago.emulator.customers import upsert_customer
from tests.collection.conftest import Harness, days
from tests.collection.stripe_fake import AUTHENTICATE, SUCCEED
from tests.support.stripe_contract import sdk_generated_key

# Every POST the gateway's Stripe client can make (gateway/integrations/stripe/client.py).
EVERY_POST = {
    "/v1/customers",
    "/v1/customers/{id}",
    "/v1/payment_intents",
    "/v1/payment_intents/{id}/cancel",
    "/v1/checkout/sessions",
    "/v1/checkout/sessions/{id}/expire",
    "/v1/billing_portal/sessions",
    "/v1/refunds",
}


def _template(path: str) -> str:
    return re.sub(r"/(cus|pi|cs_test)_[^/]+", "/{id}", path)


def _counts(harness: Harness) -> tuple[int, ...]:
    fake = harness.stripe
    return tuple(
        len(objects)
        for objects in (
            fake.customers,
            fake.payment_intents,
            fake.checkout_sessions,
            fake.portal_sessions,
            fake.refunds,
        )
    )


async def _post(harness: Harness, caller: dict[str, str], path: str) -> Any:
    answer = await harness.gw.client.post(path, headers=caller)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _full_flow(harness: Harness, caller: dict[str, str]) -> str:
    """Charge (needs the customer), link, retry (link expired), pay, save a card, refund,
    portal links; the Lago-only customer ``zeta`` gets its Stripe customer created."""
    await harness.customer("acme", AUTHENTICATE)
    issued = harness.emulator.issue_invoice("acme", 3_000)
    await harness.settle()
    await harness.settle(now=days(1))
    link = (await harness.attempts(issued["lago_id"]))[-1]
    harness.stripe.complete_checkout(str(link.checkout_session_id), SUCCEED)
    await harness.settle()
    assert harness.invoice(issued["lago_id"])["payment_status"] == "succeeded"

    setup = await _post(harness, caller, "/gateway/customers/acme/checkout")
    harness.stripe.complete_checkout(setup["checkout"]["id"], SUCCEED)
    invoice = harness.invoice(issued["lago_id"])
    await harness.gw.runtime.lago.call(
        "POST",
        "/credit_notes",
        json={
            "credit_note": {
                "invoice_id": invoice["lago_id"],
                "reason": "other",
                "refund_amount_cents": 500,
                "credit_amount_cents": 0,
                "items": [{"fee_id": invoice["fees"][0]["lago_id"], "amount_cents": 500}],
            }
        },
    )
    await harness.settle()
    upsert_customer(
        harness.emulator,
        {"external_id": "zeta", "name": "Zeta", "email": "ap@zeta.test", "currency": "USD"},
    )
    for customer in ("acme", "zeta"):
        await _post(harness, caller, f"/gateway/customers/{customer}/portal")
    return str(issued["lago_id"])


async def _run_again(harness: Harness, caller: dict[str, str], invoice_id: str) -> None:
    """The same local operations once more, as a crash-and-retry or a repeated call would."""
    runtime = harness.gw.runtime
    attempts = await harness.attempts(invoice_id)
    first_link = next(a for a in attempts if a.kind == "checkout")
    await charger.drive(runtime, attempts[0], actor="test")
    with pytest.raises(Conflict):  # cancels (again), then finds the invoice paid: no new link
        await checkout.ask_customer(runtime, attempts[0], actor="test")
    await checkout.drive_payment_link(
        runtime.database,
        mode.stripe_of(runtime),
        first_link,
        actor="test",
        fallback_url=runtime.settings.collection_return_url,
    )
    await checkout.close_link(runtime, first_link, actor="test")
    async with runtime.database.session() as session:
        [refund] = await rows.refunds(session, invoice_id=invoice_id)
    await refunds.drive_refund(runtime, refund, actor="test")
    await _post(harness, caller, "/gateway/customers/acme/checkout")
    # A crash between creating zeta's Stripe customer and storing the link: created again.
    await StripeLinks(runtime.database, runtime.stripe)._create(
        "zeta", "test", "ap@zeta.test", None
    )
    for customer in ("acme", "zeta"):
        await _post(harness, caller, f"/gateway/customers/{customer}/portal")
    await harness.settle()


async def test_every_post_carries_a_derived_key_and_a_rerun_sends_the_same_one(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windowed keys (setup and portal links) are stable within their window: hold the clock.
    frozen = time.time()
    monkeypatch.setattr(checkout, "time", SimpleNamespace(time=lambda: frozen))

    caller = await harness.gw.headers("billing:write")  # one API key, as a retrying client
    invoice_id = await _full_flow(harness, caller)

    posts = list(harness.stripe.posts)
    assert {_template(path) for path, _ in posts} == EVERY_POST
    assert [(p, k) for p, k in posts if sdk_generated_key(k)] == []
    before, objects = {key for _, key in posts}, _counts(harness)

    await _run_again(harness, caller, invoice_id)

    again = harness.stripe.posts[len(posts) :]
    assert {_template(path) for path, _ in again} == EVERY_POST - {"/v1/customers/{id}"}
    assert {key for _, key in again} <= before  # the same keys: Stripe replays, creates nothing
    assert _counts(harness) == objects
