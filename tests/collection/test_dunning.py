"""Failed charges retried on the dunning schedule; the customer asked to act when needed."""

from __future__ import annotations

from sqlalchemy import text

from tests.collection.conftest import RETURN_URL, Harness, days
from tests.collection.stripe_fake import AUTHENTICATE, DECLINE, SUCCEED


async def _relayed(harness: Harness, kind: str) -> list[str]:
    async with harness.gw.runtime.database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT body FROM relay_messages WHERE type = :t ORDER BY seq"), {"t": kind}
        )
        return [row[0] for row in rows]


async def test_declining_card_is_retried_each_time_as_a_new_attempt_then_fails(
    harness: Harness,
) -> None:
    await harness.customer("acme", DECLINE)
    issued = harness.emulator.issue_invoice("acme", 1_999)

    await harness.settle()
    [first] = await harness.attempts(issued["lago_id"])
    assert (first.status, first.failure_code) == ("failed", "generic_decline")
    assert harness.invoice(issued["lago_id"])["payment_status"] == "failed"
    assert first.next_retry_at is not None  # one day later (schedule 1, 3)

    await harness.settle(now=days(0.5))
    assert len(await harness.attempts(issued["lago_id"])) == 1  # not due yet
    await harness.settle(now=days(1))
    await harness.settle(now=days(4))

    attempts = await harness.attempts(issued["lago_id"])
    assert [(a.attempt, a.status) for a in attempts] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    assert len({a.idempotency_key for a in attempts}) == 3
    assert len(harness.stripe.intents_for(issued["lago_id"])) == 3
    assert all(a.next_retry_at is None for a in attempts)
    [failed] = await _relayed(harness, "collection.failed")
    assert issued["lago_id"] in failed
    assert harness.invoice(issued["lago_id"])["payment_status"] == "failed"

    await harness.settle(now=days(30))
    assert len(await harness.attempts(issued["lago_id"])) == 3  # nothing after the last


async def test_a_new_card_saved_on_checkout_becomes_default_and_the_retry_succeeds(
    harness: Harness,
) -> None:
    stripe_customer = await harness.customer("acme", DECLINE)
    issued = harness.emulator.issue_invoice("acme", 5_000)
    await harness.settle()
    headers = await harness.gw.headers("billing:write")

    link = await harness.gw.client.post("/gateway/customers/acme/checkout", headers=headers)
    assert link.status_code == 200, link.text
    session = harness.stripe.checkout_sessions[link.json()["checkout"]["id"]]
    assert (session["mode"], session["customer"], session["success_url"]) == (
        "setup",
        stripe_customer,
        RETURN_URL,
    )
    harness.stripe.complete_checkout(session["id"], SUCCEED)
    await harness.settle()

    default = harness.stripe.customers[stripe_customer]["invoice_settings"]
    assert (
        default["default_payment_method"]
        == harness.stripe.setup_intents[session["setup_intent"]]["payment_method"]
    )
    attempts = await harness.attempts(issued["lago_id"])
    assert [a.status for a in attempts] == ["failed", "succeeded"]  # retry brought forward
    assert harness.invoice(issued["lago_id"])["payment_status"] == "succeeded"


async def test_authentication_required_opens_a_payment_link_and_tells_subscribers(
    harness: Harness,
) -> None:
    await harness.customer("acme", AUTHENTICATE)
    issued = harness.emulator.issue_invoice("acme", 3_000)

    await harness.settle()

    first, link = await harness.attempts(issued["lago_id"])
    assert (first.kind, first.status, first.failure_code) == (
        "off_session",
        "canceled",
        "authentication_required",
    )
    assert harness.stripe.payment_intents[first.payment_intent_id]["status"] == "canceled"
    assert (link.kind, link.status) == ("checkout", "pending")
    assert link.payment_link.startswith("https://checkout.stripe.com/")
    [message] = await _relayed(harness, "collection.action_required")
    assert link.payment_link in message
    assert '"reason":"authentication_required"' in message

    harness.stripe.complete_checkout(link.checkout_session_id, SUCCEED)
    await harness.settle()

    first, link = await harness.attempts(issued["lago_id"])
    assert link.status == "succeeded"
    assert harness.invoice(issued["lago_id"])["payment_status"] == "succeeded"
    assert harness.stripe.succeeded_charges(issued["lago_id"]) == 1
    await harness.settle(now=days(10))  # the scheduled retry is over: paid
    assert len(await harness.attempts(issued["lago_id"])) == 2


async def test_retry_after_an_unpaid_link_expires_the_link_first(harness: Harness) -> None:
    await harness.customer("acme", AUTHENTICATE)
    issued = harness.emulator.issue_invoice("acme", 3_000)
    await harness.settle()
    _, link = await harness.attempts(issued["lago_id"])

    await harness.settle(now=days(1))

    attempts = await harness.attempts(issued["lago_id"])
    assert harness.stripe.checkout_sessions[link.checkout_session_id]["status"] == "expired"
    assert [(a.kind, a.status) for a in attempts[:3]] == [
        ("off_session", "canceled"),
        ("checkout", "canceled"),
        ("off_session", "canceled"),
    ]
    assert attempts[3].kind == "checkout"  # still needs the customer: a new link
    assert len(await _relayed(harness, "collection.action_required")) == 2


async def test_payment_link_endpoint(harness: Harness) -> None:
    await harness.customer("acme", DECLINE)
    issued = harness.emulator.issue_invoice("acme", 800)
    await harness.settle()
    headers = await harness.gw.headers("billing:write")
    path = f"/gateway/invoices/{issued['lago_id']}/payment-link"

    first = await harness.gw.client.post(path, headers=headers)
    again = await harness.gw.client.post(path, headers=headers)

    assert first.status_code == 200, first.text
    assert first.json()["payment_link"]["url"] == again.json()["payment_link"]["url"]
    assert first.json()["payment_link"]["attempt"] == 2
    harness.stripe.complete_checkout(
        harness.stripe.checkout_sessions[first.json()["payment_link"]["url"].rsplit("/", 1)[1]][
            "id"
        ],
        SUCCEED,
    )
    await harness.settle()
    paid = await harness.gw.client.post(path, headers=headers)
    assert paid.status_code == 409
    assert harness.invoice(issued["lago_id"])["payment_status"] == "succeeded"
    assert await _relayed(harness, "collection.action_required") == []  # asked for, not raised


async def test_portal_link_and_unknown_customers(harness: Harness) -> None:
    stripe_customer = await harness.customer("acme")
    headers = await harness.gw.headers("billing:write")

    portal = await harness.gw.client.post(
        "/gateway/customers/acme/portal",
        json={"return_url": "https://shop.test/account"},
        headers=headers,
    )
    missing = await harness.gw.client.post("/gateway/customers/ghost/portal", headers=headers)
    reader = await harness.gw.client.post(
        "/gateway/customers/acme/portal", headers=await harness.gw.headers("billing:read")
    )

    assert portal.status_code == 200, portal.text
    assert portal.json()["portal"]["url"].startswith("https://billing.stripe.com/")
    [session] = harness.stripe.portal_sessions.values()
    assert (session["customer"], session["return_url"]) == (
        stripe_customer,
        "https://shop.test/account",
    )
    assert missing.status_code == 404
    assert reader.status_code == 403


async def test_retry_payment_starts_a_new_attempt_now(harness: Harness) -> None:
    stripe_customer = await harness.customer("acme", DECLINE)
    issued = harness.emulator.issue_invoice("acme", 2_000)
    await harness.settle()
    harness.stripe.add_card(stripe_customer, SUCCEED)  # the customer fixed their card
    headers = await harness.gw.headers("billing:write")
    path = f"/api/v1/invoices/{issued['lago_id']}/retry_payment"

    retried = await harness.gw.client.post(path, headers=headers)
    await harness.settle()
    again = await harness.gw.client.post(path, headers=headers)

    assert retried.status_code == 200 and retried.content == b""
    assert [a.status for a in await harness.attempts(issued["lago_id"])] == ["failed", "succeeded"]
    assert again.status_code == 405
    assert again.json()["code"] == "invalid_status"
