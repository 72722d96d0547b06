"""The revenue page in process: its tables hold Lago's analytics figures, its charts one bar
per month sized by them, CSV exports, the currency and months filters, Lago down, no session.

Invoices are issued in February and March 2025 (the emulator's clock), in USD and EUR.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.errors import UpstreamRejected
from gateway.finance import revenue
from lago.emulator.billing import set_payment_status
from lago.emulator.customers import upsert_customer
from tests.conftest import Gateway
from tests.support.people import sign_in

FEBRUARY = datetime(2025, 2, 10, 12, tzinfo=UTC)
MARCH = datetime(2025, 3, 14, 12, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"
MONTHS = ["2025-02", "2025-03"]
BLOCK = re.compile(r'<div class="revenue-block[^"]*".*?</table>\s*</div>\s*</div>', re.S)


async def _subscribe(gateway: Gateway, customer: str, currency: str) -> str:
    lago = gateway.runtime.lago
    code = f"basic_{currency.lower()}"
    plan = {"name": code, "code": code, "interval": "monthly", "amount_cents": 1000}
    plan |= {"amount_currency": currency, "pay_in_advance": False}
    await lago.call("POST", "/plans", json={"plan": plan})
    sub = {"external_customer_id": customer, "plan_code": code, "external_id": f"sub_{customer}"}
    made = await lago.call("POST", "/subscriptions", json={"subscription": sub})
    return str(made["subscription"]["lago_id"])


def _issue(
    gateway: Gateway, customer: str, cents: int, currency: str, sub: str | None, paid: str
) -> str:
    item = {"type": "subscription"} if sub else {"type": "add_on", "code": "setup"}
    fee = {"amount_cents": cents, "item": item, "lago_subscription_id": sub}
    made = gateway.emulator.issue_invoice(customer, cents, currency=currency, fees=[fee])
    invoice = gateway.emulator.invoices[made["lago_id"]]
    if paid != "pending":
        set_payment_status(gateway.emulator, invoice, paid)
    return str(made["lago_id"])


async def seed(gateway: Gateway) -> None:
    """February: USD 100 paid and 25 overdue, EUR 70 failed; March: USD 120 pending and 30
    failed, EUR 80 paid. Subscription fees are MRR; the setup fees are not."""
    emulator = gateway.emulator
    emulator.clock = lambda: FEBRUARY
    upsert_customer(emulator, {"external_id": "acme", "name": "Acme Inc", "currency": "USD"})
    upsert_customer(emulator, {"external_id": "globex", "name": "Globex", "currency": "EUR"})
    acme, globex = (
        await _subscribe(gateway, "acme", "USD"),
        await _subscribe(gateway, "globex", "EUR"),
    )
    _issue(gateway, "acme", 10_000, "USD", acme, "succeeded")
    late = _issue(gateway, "acme", 2_500, "USD", None, "pending")
    emulator.invoices[late]["payment_overdue"] = True
    _issue(gateway, "globex", 7_000, "EUR", globex, "failed")
    emulator.clock = lambda: MARCH
    _issue(gateway, "acme", 12_000, "USD", acme, "pending")
    _issue(gateway, "acme", 3_000, "USD", None, "failed")
    _issue(gateway, "globex", 8_000, "EUR", globex, "succeeded")


def blocks(html: str) -> dict[tuple[str, str], ET.Element]:
    """Each chart-and-table block of the page by (dataset, currency)."""
    found = {}
    for text in BLOCK.findall(html):
        element = ET.fromstring(text)
        found[(element.attrib["data-dataset"], element.attrib["data-currency"])] = element
    return found


def table_rows(block: ET.Element) -> list[list[str]]:
    """The block's table body: the month, then each figure as shown."""
    return [["".join(cell.itertext()) for cell in row] for row in block.iter("tr")][1:]


def bars(block: ET.Element) -> list[ET.Element]:
    return [
        e
        for e in block.iter()
        if e.tag in (f"{SVG}rect", f"{SVG}circle") and "data-value" in e.attrib
    ]


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency}"


async def _analytics(gateway: Gateway, route: str) -> list[dict[str, Any]]:
    reader = await gateway.headers("billing:read")
    answer = await gateway.client.get(
        f"/api/v1/analytics/{route}", headers=reader, params={"months": 12}
    )
    assert answer.status_code == 200, answer.text
    [rows] = answer.json().values()
    return list(rows)


async def test_the_tables_hold_lagos_figures_per_currency_and_month(gateway: Gateway) -> None:
    await seed(gateway)
    await sign_in(gateway)

    page = await gateway.client.get("/finance/revenue")

    assert page.status_code == 200
    found = blocks(page.text)
    assert sorted(found) == sorted(
        (d, c) for d in ("mrr", "gross-revenue", "collections", "overdue") for c in ("EUR", "USD")
    )
    assert table_rows(found[("mrr", "USD")]) == [
        ["Feb 2025", "100.00 USD"],
        ["Mar 2025", "120.00 USD"],
    ]
    assert table_rows(found[("gross-revenue", "USD")]) == [
        ["Feb 2025", "2", "125.00 USD"],
        ["Mar 2025", "2", "150.00 USD"],
    ]
    assert table_rows(found[("collections", "EUR")]) == [
        ["Feb 2025", "0", "0.00 EUR", "1", "70.00 EUR", "0", "0.00 EUR"],
        ["Mar 2025", "1", "80.00 EUR", "0", "0.00 EUR", "0", "0.00 EUR"],
    ]
    assert table_rows(found[("overdue", "USD")]) == [
        ["Feb 2025", "25.00 USD"],
        ["Mar 2025", "0.00 USD"],
    ]


async def test_the_tables_equal_the_analytics_api(gateway: Gateway) -> None:
    await seed(gateway)
    await sign_in(gateway)

    found = blocks((await gateway.client.get("/finance/revenue")).text)

    for route, dataset, column in (
        ("mrr", "mrr", 1),
        ("gross_revenue", "gross-revenue", 2),
        ("overdue_balance", "overdue", 1),
    ):
        figures: dict[tuple[str, str], int] = {}
        for row in await _analytics(gateway, route):
            if row["currency"]:
                key = (row["currency"], row["month"][:7])
                figures[key] = figures.get(key, 0) + row["amount_cents"]
        assert figures, route  # the comparison below compares something
        for currency in ("EUR", "USD"):
            for month, (_, *cells) in zip(
                MONTHS, table_rows(found[(dataset, currency)]), strict=True
            ):
                expected = figures.get((currency, month), 0)
                assert cells[column - 1] == _money(expected, currency), (route, currency, month)
    collections = [r for r in await _analytics(gateway, "invoice_collection") if r["currency"]]
    assert len(collections) == 6  # USD: 2 in February, 2 in March; EUR: 1 and 1
    for row in collections:
        table = table_rows(found[("collections", row["currency"])])
        index = {"succeeded": 1, "failed": 3, "pending": 5}[row["payment_status"]]
        line = table[MONTHS.index(row["month"][:7])]
        shown = [str(row["invoices_count"]), _money(row["amount_cents"], row["currency"])]
        assert line[index : index + 2] == shown, row


async def test_one_bar_per_month_sized_by_the_figures(gateway: Gateway) -> None:
    await seed(gateway)
    await sign_in(gateway)

    found = blocks((await gateway.client.get("/finance/revenue")).text)

    mrr = bars(found[("mrr", "USD")])
    assert [b.findtext(f"{SVG}title") for b in mrr] == [
        "Feb 2025: 100.00 USD",
        "Mar 2025: 120.00 USD",
    ]
    assert float(mrr[1].attrib["height"]) / float(mrr[0].attrib["height"]) == pytest.approx(
        1.2, rel=0.01
    )
    svg = found[("mrr", "USD")].find(f".//{SVG}svg")
    assert svg is not None and svg.findtext(f"{SVG}title") == "MRR per month, USD"
    collected = bars(found[("collections", "USD")])
    assert len(collected) == 2 * 3  # paid, failed and pending for each month
    heights = {b.findtext(f"{SVG}title"): float(b.attrib["height"]) for b in collected}
    assert heights["Mar 2025 · Pending: 120.00 USD"] == pytest.approx(
        4 * heights["Mar 2025 · Failed: 30.00 USD"], rel=0.01
    )
    assert heights["Feb 2025 · Failed: 0.00 USD"] == 0
    overdue = bars(found[("overdue", "USD")])
    assert [p.tag for p in overdue] == [f"{SVG}circle"] * 2


async def test_csv_exports_each_dataset_with_the_filters(gateway: Gateway) -> None:
    await seed(gateway)
    await sign_in(gateway)

    page = await gateway.client.get("/finance/revenue", params={"currency": "usd", "months": 6})
    assert 'href="/finance/revenue/gross-revenue.csv?currency=USD&amp;months=6"' in page.text
    answer = await gateway.client.get(
        "/finance/revenue/gross-revenue.csv", params={"currency": "USD", "months": 6}
    )
    everything = await gateway.client.get("/finance/revenue/collections.csv")
    unknown = await gateway.client.get("/finance/revenue/secrets.csv")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert list(csv.reader(io.StringIO(answer.text))) == [
        ["month", "currency", "invoices", "gross_revenue"],
        ["2025-02", "USD", "2", "125.00"],
        ["2025-03", "USD", "2", "150.00"],
    ]
    rows = list(csv.DictReader(io.StringIO(everything.text)))
    assert [(r["currency"], r["month"]) for r in rows] == [
        ("EUR", "2025-02"),
        ("EUR", "2025-03"),
        ("USD", "2025-02"),
        ("USD", "2025-03"),
    ]
    assert (rows[0]["failed_invoices"], rows[0]["failed_amount"]) == ("1", "70.00")
    assert unknown.status_code == 404


async def test_the_currency_filter_shows_one_currency(gateway: Gateway) -> None:
    await seed(gateway)
    await sign_in(gateway)

    euro = await gateway.client.get("/finance/revenue", params={"currency": "eur"})
    yen = await gateway.client.get("/finance/revenue", params={"currency": "JPY"})
    bad = await gateway.client.get("/finance/revenue", params={"currency": "<x>", "months": "5"})

    assert {currency for _, currency in blocks(euro.text)} == {"EUR"}
    assert '<option value="EUR" selected>EUR</option>' in euro.text
    assert '<option value="USD">USD</option>' in euro.text  # the other currency stays offered
    assert blocks(yen.text) == {}
    assert "No figures in JPY in the last 12 months" in yen.text
    assert bad.status_code == 200
    assert "Some filters are not valid: currency, months." in bad.text
    assert {currency for _, currency in blocks(bad.text)} == {"EUR", "USD"}


async def test_the_months_filter_narrows_the_window(gateway: Gateway) -> None:
    await seed(gateway)
    await sign_in(gateway)

    # Now is May: the last three months are March to May, the last 24 go back to February.
    gateway.emulator.clock = lambda: datetime(2025, 5, 2, tzinfo=UTC)
    recent = blocks((await gateway.client.get("/finance/revenue", params={"months": 3})).text)
    wide = blocks((await gateway.client.get("/finance/revenue", params={"months": 24})).text)

    assert [row[0] for row in table_rows(recent[("mrr", "USD")])] == [
        "Mar 2025",
        "Apr 2025",
        "May 2025",
    ]
    assert [row[0] for row in table_rows(wide[("mrr", "USD")])] == [
        "Feb 2025",
        "Mar 2025",
        "Apr 2025",
        "May 2025",
    ]
    assert len(bars(recent[("mrr", "USD")])) == 3


async def test_no_revenue_yet_is_an_empty_state(gateway: Gateway) -> None:
    await sign_in(gateway)

    page = await gateway.client.get("/finance/revenue")

    assert page.status_code == 200
    assert "No revenue in the last 12 months" in page.text
    assert blocks(page.text) == {}


async def test_lago_down_is_a_message_not_an_error(gateway: Gateway) -> None:
    await seed(gateway)
    await sign_in(gateway)
    gateway.emulator.faults.outage(60)
    try:
        page = await gateway.client.get("/finance/revenue")
        export = await gateway.client.get("/finance/revenue/mrr.csv")
    finally:
        gateway.emulator.faults.clear()

    assert page.status_code == 503
    assert "Lago did not answer" in page.text
    assert 'name="currency"' in page.text  # still the page, with its filters
    assert blocks(page.text) == {}
    assert export.status_code == 503
    assert "did not answer" in export.text


async def test_no_session_goes_to_sign_in(gateway: Gateway) -> None:
    for path in ("/finance/revenue", "/finance/revenue/mrr.csv"):
        answer = await gateway.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/finance/login"), path


async def test_a_read_lago_refuses_is_named_and_the_others_are_shown(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lago without a premium licence refuses MRR (403 ``feature_unavailable``)."""
    await seed(gateway)
    await sign_in(gateway)
    read = revenue.figures

    async def refusing(lago: Any, route: str, query: Any) -> dict[str, Any]:
        if route == "mrr":
            raise UpstreamRejected(403, {"error": "Forbidden", "code": "feature_unavailable"})
        return await read(lago, route, query)

    monkeypatch.setattr(revenue, "figures", refusing)
    page = await gateway.client.get("/finance/revenue")
    export = await gateway.client.get("/finance/revenue/mrr.csv")

    assert page.status_code == 200
    assert "MRR: Lago refused this read (403 feature_unavailable)." in page.text
    assert "/finance/revenue/mrr.csv" not in page.text
    assert sorted(blocks(page.text))[:2] == [("collections", "EUR"), ("collections", "USD")]
    assert ("mrr", "USD") not in blocks(page.text)
    assert ("gross-revenue", "USD") in blocks(page.text)
    assert export.status_code == 403
