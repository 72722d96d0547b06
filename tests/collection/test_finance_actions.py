"""The finance pages over real collection data: attempts, links, dunning, refunds, retry."""

from __future__ import annotations

from gateway.users.service import Role
from tests.collection.conftest import Harness
from tests.collection.stripe_fake import AUTHENTICATE, DECLINE, SUCCEED
from tests.support.people import csrf_of, sign_in


async def _sign_in(harness: Harness, role: Role) -> None:
    await sign_in(harness.gw, role=role)


async def test_collection_overview_shows_links_dunning_and_amounts(harness: Harness) -> None:
    await harness.customer("acme", AUTHENTICATE)
    await harness.customer("globex", DECLINE)
    waiting = harness.emulator.issue_invoice("acme", 3_000)
    failing = harness.emulator.issue_invoice("globex", 4_500)
    await harness.settle()
    await _sign_in(harness, Role.VIEWER)

    page = await harness.gw.client.get("/finance/collection")

    assert page.status_code == 200
    assert waiting["number"] in page.text and "authentication_required" in page.text
    assert "https://checkout.stripe.com/c/pay/" in page.text
    assert failing["number"] in page.text and "generic_decline" in page.text
    assert "45.00 USD" in page.text  # failed payments
    assert "30.00 USD" in page.text  # outstanding


async def test_retry_from_the_invoice_page_needs_write_and_csrf(harness: Harness) -> None:
    stripe_customer = await harness.customer("acme", DECLINE)
    issued = harness.emulator.issue_invoice("acme", 2_000)
    await harness.settle()
    harness.stripe.add_card(stripe_customer, SUCCEED)
    await _sign_in(harness, Role.OPERATOR)
    path = f"/finance/invoices/{issued['lago_id']}"

    page = await harness.gw.client.get(path)
    assert "generic_decline" in page.text and "Retry payment now" in page.text
    forged = await harness.gw.client.post(f"{path}/retry", data={"csrf_token": "x"})
    token = csrf_of(page.text)
    retried = await harness.gw.client.post(f"{path}/retry", data={"csrf_token": token})
    await harness.settle()
    after = await harness.gw.client.get(path)

    assert forged.status_code == 403
    assert retried.status_code == 303
    assert "A new payment attempt was started." in after.text
    assert [a.status for a in await harness.attempts(issued["lago_id"])] == ["failed", "succeeded"]
    assert "collection.attempt.succeeded" in after.text  # the audit trail of this invoice


async def test_read_only_key_cannot_retry(harness: Harness) -> None:
    await harness.customer("acme", DECLINE)
    issued = harness.emulator.issue_invoice("acme", 2_000)
    await harness.settle()
    await _sign_in(harness, Role.VIEWER)
    path = f"/finance/invoices/{issued['lago_id']}"
    page = await harness.gw.client.get(path)
    token = csrf_of(page.text)

    answer = await harness.gw.client.post(f"{path}/retry", data={"csrf_token": token})

    assert "Retry payment now" not in page.text
    assert answer.status_code == 403
    assert len(await harness.attempts(issued["lago_id"])) == 1


async def test_an_operator_refunds_a_paid_invoice_from_its_page_once(harness: Harness) -> None:
    await harness.customer("acme", SUCCEED)
    issued = harness.emulator.issue_invoice("acme", 4_000)
    await harness.settle()
    await _sign_in(harness, Role.OPERATOR)
    path = f"/finance/invoices/{issued['lago_id']}"
    page = await harness.gw.client.get(path)

    answer = await harness.gw.client.post(
        f"{path}/credit-notes",
        data={
            "csrf_token": csrf_of(page.text),
            "amount": "25.00",
            "kind": "refund",
            "reason": "product_unsatisfactory",
        },
    )
    await harness.settle()
    after = await harness.gw.client.get(path)

    assert answer.status_code == 303
    [refund] = harness.stripe.refunds.values()
    [note] = harness.emulator.credit_notes.values()
    assert refund["amount"] == 2_500
    assert refund["metadata"]["lago_credit_note_id"] == note["lago_id"]
    assert note["refund_status"] == "succeeded"
    assert "25.00 USD refunded to the card" in after.text
    assert 'class="badge succeeded">succeeded</span></td>' in after.text
