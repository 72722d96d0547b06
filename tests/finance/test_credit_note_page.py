"""Credit notes on the invoice page: listed, and made by an operator (audited by name)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from gateway.audit.models import AuditEntry
from gateway.errors import ValidationFailed
from gateway.finance.credits import allocate, remaining_by_fee
from gateway.finance.pages.credits import cents_of
from gateway.users.service import Role
from lago.emulator.customers import upsert_customer
from tests.conftest import Gateway
from tests.support.people import csrf_of, sign_in


def _invoice(gateway: Gateway) -> str:
    upsert_customer(gateway.emulator, {"external_id": "acme", "name": "Acme", "currency": "USD"})
    issued = gateway.emulator.issue_invoice(
        "acme", 5_000, fees=[{"amount_cents": 3_000}, {"amount_cents": 2_000}]
    )
    return str(issued["lago_id"])


async def _post(gateway: Gateway, lago_id: str, **fields: str) -> str:
    """Post the credit note form; the invoice page the browser lands on."""
    path = f"/finance/invoices/{lago_id}"
    page = await gateway.client.get(path)
    answer = await gateway.client.post(
        f"{path}/credit-notes", data={"csrf_token": csrf_of(page.text), **fields}
    )
    assert answer.status_code == 303 and answer.headers["location"] == path
    return (await gateway.client.get(path)).text


async def test_an_operator_credits_an_invoice_and_sees_the_note(gateway: Gateway) -> None:
    lago_id = _invoice(gateway)
    await sign_in(gateway, role=Role.OPERATOR)

    page = await _post(gateway, lago_id, amount="35.00", kind="credit", reason="order_change")

    [note] = gateway.emulator.credit_notes.values()
    assert note["credit_amount_cents"] == 3_500 and note["refund_amount_cents"] == 0
    assert [item["amount_cents"] for item in note["items"]] == [3_000, 500]  # fees in order
    assert "35.00 USD credited to the customer" in page
    table = page[page.index('<table class="credit-notes">') :]
    assert note["number"] in table and "order change" in table
    async with gateway.runtime.database.session() as session:
        rows = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "credit_notes.create"))
        ).all()
    assert [(r.actor, r.outcome, r.target) for r in rows] == [("user:ann", "success", lago_id)]


async def test_what_cannot_be_credited_or_refunded_is_said_and_nothing_is_made(
    gateway: Gateway,
) -> None:
    lago_id = _invoice(gateway)
    await sign_in(gateway, role=Role.OPERATOR)
    await _post(gateway, lago_id, amount="45", kind="credit", reason="other")

    too_much = await _post(gateway, lago_id, amount="10.01", kind="credit", reason="other")
    unpaid_refund = await _post(gateway, lago_id, amount="1", kind="refund", reason="other")
    not_money = await _post(gateway, lago_id, amount="ten", kind="credit", reason="other")

    assert "at most 500 cents before taxes" in too_much
    assert "at most 0 cents can be refunded here" in unpaid_refund
    assert "not a number such as 12.50" in not_money
    assert len(gateway.emulator.credit_notes) == 1


async def test_a_viewer_sees_notes_but_cannot_make_one(gateway: Gateway) -> None:
    lago_id = _invoice(gateway)
    await sign_in(gateway, role=Role.VIEWER)
    page = await gateway.client.get(f"/finance/invoices/{lago_id}")

    refused = await gateway.client.post(
        f"/finance/invoices/{lago_id}/credit-notes",
        data={"csrf_token": csrf_of(page.text), "amount": "1", "kind": "credit", "reason": "other"},
    )

    assert "Refunds and credits are for operators" in page.text
    assert 'action="/finance/invoices/' + lago_id + '/credit-notes"' not in page.text
    assert refused.status_code == 403
    assert gateway.emulator.credit_notes == {}


def test_amounts_and_allocation() -> None:
    assert cents_of("12.50", "USD") == 1250
    assert cents_of("1,000", "JPY") == 1000
    assert cents_of("12.505", "USD") is None and cents_of("nan", "USD") is None
    invoice = {
        "fees": [{"lago_id": "a", "amount_cents": 300}, {"lago_id": "b", "amount_cents": 200}]
    }
    notes = [{"items": [{"fee": {"lago_id": "a"}, "amount_cents": 250}]}]
    remaining = remaining_by_fee(invoice, notes)
    assert remaining == {"a": 50, "b": 200}
    assert allocate(remaining, 100) == [
        {"fee_id": "a", "amount_cents": 50},
        {"fee_id": "b", "amount_cents": 50},
    ]
    with pytest.raises(ValidationFailed, match="at most 250 cents"):
        allocate(remaining, 251)
