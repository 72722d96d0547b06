"""The invoice list and one invoice as finance reads them: search, sorting, ageing, wording."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from gateway.finance.listing import bucket_of
from gateway.users.service import Role
from lago.emulator.customers import upsert_customer
from tests.conftest import Gateway
from tests.support.people import sign_in

ROW = re.compile(r'<a href="/finance/invoices/([0-9a-f-]+)">')


def _issue(
    gateway: Gateway, customer: str, cents: int, days_late: int, currency: str = "USD"
) -> str:
    """A finalized, unpaid invoice whose payment was due ``days_late`` days ago."""
    issued = gateway.emulator.issue_invoice(customer, cents, currency=currency)
    due = (datetime.now(UTC).date() - timedelta(days=days_late)).isoformat()
    gateway.emulator.invoices[issued["lago_id"]]["payment_due_date"] = due
    return str(issued["lago_id"])


def _seed(gateway: Gateway) -> dict[str, str]:
    upsert_customer(
        gateway.emulator,
        {"external_id": "acme", "name": "Acme Inc", "email": "ap@acme.test", "currency": "USD"},
    )
    upsert_customer(
        gateway.emulator, {"external_id": "zeta", "name": "Zeta Ltd", "currency": "EUR"}
    )
    return {
        "current": _issue(gateway, "acme", 1_000, -5),
        "late10": _issue(gateway, "acme", 3_000, 10),
        "late45": _issue(gateway, "acme", 2_000, 45),
        "late200": _issue(gateway, "zeta", 9_000, 200, "EUR"),
    }


def _order(html: str) -> list[str]:
    return ROW.findall(html)


async def test_search_finds_by_number_or_customer(gateway: Gateway) -> None:
    ids = _seed(gateway)
    await sign_in(gateway)
    number = gateway.emulator.invoices[ids["late45"]]["number"]

    by_number = await gateway.client.get("/finance/invoices", params={"search_term": number})
    by_email = await gateway.client.get("/finance/invoices", params={"search_term": "ap@acme"})
    by_name = await gateway.client.get("/finance/invoices", params={"search_term": "zeta"})

    assert _order(by_number.text) == [ids["late45"]]
    assert set(_order(by_email.text)) == {ids["current"], ids["late10"], ids["late45"]}
    assert _order(by_name.text) == [ids["late200"]]
    assert f'value="{number}"' in by_number.text  # the search stays in the form


async def test_columns_sort_the_whole_filtered_set_both_ways(gateway: Gateway) -> None:
    ids = _seed(gateway)
    await sign_in(gateway)
    usd = {"currency": "USD"}

    ascending = await gateway.client.get("/finance/invoices", params={**usd, "sort": "total"})
    descending = await gateway.client.get(
        "/finance/invoices", params={**usd, "sort": "total", "dir": "desc"}
    )
    by_customer = await gateway.client.get("/finance/invoices", params={"sort": "customer"})

    assert _order(ascending.text) == [ids["current"], ids["late45"], ids["late10"]]
    assert _order(descending.text) == [ids["late10"], ids["late45"], ids["current"]]
    assert _order(by_customer.text)[-1] == ids["late200"]  # Zeta after Acme
    assert 'aria-sort="ascending"' in ascending.text
    assert "sort=total&amp;dir=desc" in ascending.text  # the header link flips the order
    assert "currency=USD" in ascending.text


async def test_overdue_ageing_buckets_per_currency(gateway: Gateway) -> None:
    _seed(gateway)
    await sign_in(gateway)

    page = (await gateway.client.get("/finance/invoices")).text
    ageing = page[
        page.index('<table class="ageing">') : page.index("</table>", page.index("ageing"))
    ]
    rows = {
        cells[0]: cells[1:]
        for cells in (
            re.findall(r"<td[^>]*>(.*?)(?:<br>.*?)?</td>", row)
            for row in re.findall(r"<tr><td>.*?</tr>", ageing, re.S)
        )
    }

    assert rows["USD"] == ["10.00 USD", "30.00 USD", "20.00 USD", "0.00 USD", "0.00 USD"]
    assert rows["EUR"] == ["0.00 EUR", "0.00 EUR", "0.00 EUR", "0.00 EUR", "90.00 EUR"]


def test_buckets_edges() -> None:
    today = date(2026, 12, 6)
    days = [-3, 0, 1, 30, 31, 60, 61, 90, 91, 400]
    due = [(today - timedelta(days=d)).isoformat() for d in days]
    assert [bucket_of(d, today) for d in due] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert bucket_of("", today) == 0


async def test_wording_finance_trips_over_is_fixed(gateway: Gateway) -> None:
    ids = _seed(gateway)
    await sign_in(gateway)

    listing = await gateway.client.get("/finance/invoices", params={"issuing_date_to": "soon"})
    invoice = await gateway.client.get(f"/finance/invoices/{ids['late10']}")
    plain = await gateway.client.get("/finance/invoices")

    flash = re.search(r'<div class="flash error" role="alert">(.*?)</div>', listing.text)
    assert flash is not None and flash.group(1).startswith("Some filters are not valid: Issued to.")
    assert "issuing_date_to" not in flash.group(1)
    assert "\u22120.00" not in invoice.text and "-0.00" not in invoice.text
    assert '<tr><th>Coupons</th><td class="num">—</td></tr>' in invoice.text
    assert 'placeholder="EUR"' in plain.text  # the first currency the data holds, not a guess
    assert '<option value="USD">' in plain.text
    assert "need Stripe, which is not configured" in invoice.text


async def test_a_viewer_is_told_why_there_are_no_payment_buttons(gateway: Gateway) -> None:
    ids = _seed(gateway)
    await sign_in(gateway, role=Role.VIEWER)
    gateway.runtime.stripe = object()  # type: ignore[assignment]  # "configured", never called
    try:
        page = await gateway.client.get(f"/finance/invoices/{ids['late10']}")
    finally:
        gateway.runtime.stripe = None

    assert "Retry payment now" not in page.text
    assert "for operators; you are signed in as a viewer" in page.text


async def test_not_found_pages_keep_the_navigation(gateway: Gateway) -> None:
    await sign_in(gateway)

    unknown_invoice = await gateway.client.get(
        "/finance/invoices/00000000-0000-4000-8000-000000000000"
    )
    unknown_page = await gateway.client.get("/finance/nowhere")

    for answer in (unknown_invoice, unknown_page):
        assert answer.status_code == 404
        assert "<nav>" in answer.text and "Sign out" in answer.text
    assert "There is no such page." in unknown_page.text


async def test_the_audit_trail_says_what_an_update_changed(gateway: Gateway) -> None:
    ids = _seed(gateway)
    writer = await gateway.headers("billing:write")
    body = {
        "invoice": {
            "payment_status": "succeeded",
            "metadata": [{"key": "po", "value": "secret-purchase-order"}],
        }
    }
    answer = await gateway.client.put(
        f"/api/v1/invoices/{ids['late10']}", json=body, headers=writer
    )
    assert answer.status_code == 200
    await sign_in(gateway)

    page = (await gateway.client.get(f"/finance/invoices/{ids['late10']}")).text

    trail = page[page.index('<table class="audit">') :]
    assert (
        "<code>invoices.update</code></td><td>payment_status: succeeded; metadata_keys: po</td>"
        in trail
    )
    assert "secret-purchase-order" not in trail
