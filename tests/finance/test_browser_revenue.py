"""The revenue page in Debian's Chromium (Playwright), against a real uvicorn server: the
charts render, each bar or point tells the figure its table shows and is drawn to scale, the
stylesheet keeps to the CSP, and a phone-sized screen does not scroll sideways. Screenshots
land in ``tests/artifacts/``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gateway.users.service import Role
from tests.conftest import Gateway
from tests.finance.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.finance.test_revenue import seed
from tests.support.people import PASSWORD, make_person
from tests.support.served import serving

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)

READ_BLOCKS = """() => Array.from(document.querySelectorAll('.revenue-block')).map(block => ({
  dataset: block.dataset.dataset,
  currency: block.dataset.currency,
  headings: Array.from(block.querySelectorAll('thead th')).map(th => th.textContent.trim()),
  rows: Array.from(block.querySelectorAll('tbody tr')).map(
    tr => Array.from(tr.children).map(cell => cell.textContent.trim())),
  marks: Array.from(block.querySelectorAll('svg.chart [data-value]')).map(mark => ({
    tag: mark.tagName,
    title: mark.querySelector('title').textContent,
    height: mark.getBoundingClientRect().height,
  })),
  chart: block.querySelector('svg.chart').getAttribute('aria-labelledby'),
  width: block.querySelector('svg.chart').getBoundingClientRect().width,
}))"""
OVERFLOW = "() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"


def _amount(text: str) -> Decimal:
    return Decimal(text.split()[0].replace(",", ""))


def _check_block(block: dict[str, Any]) -> None:
    """Every mark's tooltip is its table cell; bars are drawn to the cells' scale."""
    headings, rows = block["headings"], {row[0]: row[1:] for row in block["rows"]}
    money = [h for h in headings[1:] if not h.endswith("invoices") and h != "Invoices"]
    assert len(block["marks"]) == len(rows) * len(money), block["dataset"]
    scales = []
    for mark in block["marks"]:
        where, shown = mark["title"].rsplit(": ", 1)
        month, _, series = where.partition(" · ")
        column = headings.index(series or money[0]) - 1
        assert rows[month][column] == shown, (block["dataset"], mark["title"])
        assert shown.endswith(block["currency"])
        if mark["tag"] == "rect" and _amount(shown):
            scales.append(mark["height"] / float(_amount(shown)))
    if scales:
        assert max(scales) - min(scales) <= 0.02 * max(scales), (block["dataset"], scales)


async def _sign_in(page: Any, base: str) -> None:
    await page.goto(f"{base}/finance/revenue")
    assert page.url.startswith(f"{base}/finance/login")  # nothing without a session
    await page.fill("input[name=username]", "ann")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/finance/revenue")


async def _desktop(page: Any) -> None:
    blocks = await page.evaluate(READ_BLOCKS)
    assert len(blocks) == 8  # four datasets in USD and EUR
    for block in blocks:
        _check_block(block)
        assert block["width"] > 300
    [mrr] = [b for b in blocks if (b["dataset"], b["currency"]) == ("mrr", "USD")]
    assert [m["title"] for m in mrr["marks"]] == ["Feb 2025: 100.00 USD", "Mar 2025: 120.00 USD"]
    assert await page.locator(f"#{mrr['chart']}").text_content() == "MRR per month, USD"
    await page.screenshot(path=ARTIFACTS / "finance-revenue.png", full_page=True)

    await page.select_option("select[name=currency]", "EUR")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url("**/finance/revenue?*currency=EUR*")
    euro = await page.evaluate(READ_BLOCKS)
    assert {b["currency"] for b in euro} == {"EUR"} and len(euro) == 4
    for block in euro:
        _check_block(block)


async def _phone(page: Any, base: str) -> None:
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{base}/finance/revenue")
    scroll_width, client_width = await page.evaluate(OVERFLOW)
    assert scroll_width <= client_width, (scroll_width, client_width)
    blocks = await page.evaluate(READ_BLOCKS)
    assert len(blocks) == 8
    for block in blocks:
        assert 0 < block["width"] <= 390
        _check_block(block)
    await page.screenshot(path=ARTIFACTS / "finance-revenue-phone.png", full_page=True)


async def test_revenue_page_in_chromium(gateway: Gateway) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    ARTIFACTS.mkdir(exist_ok=True)
    await seed(gateway)
    await make_person(gateway, "ann", Role.VIEWER)
    refused: list[str] = []

    async with serving(gateway.app) as base, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.on("console", lambda m: refused.append(m.text) if "Security" in m.text else None)
        try:
            await _sign_in(page, base)
            await _desktop(page)
            await _phone(page, base)
        finally:
            await context.close()
            await browser.close()
    assert refused == []  # nothing inline the CSP had to block
