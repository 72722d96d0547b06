"""The customer pages in a real browser: Debian's Chromium driven by Playwright against the
gateway on a socket, on a desktop window and on a phone-sized one. Screenshots land in
``tests/artifacts/``."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.users.service import Role
from tests.conftest import Gateway
from tests.finance.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.finance.test_customer_page import seed
from tests.support.people import PASSWORD, make_person
from tests.support.served import serving

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)
SECTIONS = (
    "customer",
    "stripe",
    "subscriptions",
    "usage",
    "wallets",
    "invoices",
    "payments",
    "credit-notes",
    "audit",
)
PHONE = {"width": 390, "height": 844}
OVERFLOW = "() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"
WIDE_BOXES = """() => Array.from(document.querySelectorAll('.wide')).map(
    box => [box.scrollWidth, box.clientWidth, getComputedStyle(box).overflowX])"""


async def _sign_in(page: Any, base: str) -> None:
    await page.goto(f"{base}/finance/customers")
    assert page.url.startswith(f"{base}/finance/login")  # nothing without a session
    await page.fill("input[name=username]", "ann")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form.login button[type=submit]")
    await page.wait_for_url(f"{base}/finance/customers")


async def _fits_the_screen(page: Any) -> None:
    """The page never scrolls sideways; a table wider than the screen scrolls in its box."""
    scroll_width, client_width = await page.evaluate(OVERFLOW)
    assert scroll_width <= client_width, (scroll_width, client_width)
    for _inner, outer, overflow in await page.evaluate(WIDE_BOXES):
        assert overflow == "auto"
        assert outer <= client_width


async def test_customer_list_and_page_in_chromium(gateway: Gateway) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    ARTIFACTS.mkdir(exist_ok=True)
    seeded = await seed(gateway)
    await make_person(gateway, "ann", Role.VIEWER)

    async with serving(gateway.app) as base, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = await browser.new_context()
        page = await context.new_page()
        try:
            await _sign_in(page, base)
            assert await page.locator("table.customers tbody tr").count() == 2
            await page.screenshot(path=ARTIFACTS / "finance-customers.png", full_page=True)

            await page.fill("input[name=q]", "acme")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**/finance/customers?q=acme")
            assert await page.locator("table.customers tbody tr").count() == 1
            await page.click("text=Acme Inc")
            await page.wait_for_url(f"{base}/finance/customers/acme")

            for name in SECTIONS:
                assert await page.locator(f"section#{name}").is_visible(), name
            assert await page.locator("svg.meter").is_visible()
            usage = await page.locator("section#usage").inner_text()
            assert "photo_generation" in usage and "2%" in usage
            invoices = await page.locator("section#invoices").inner_text()
            assert "120.00 USD" in invoices
            await page.screenshot(path=ARTIFACTS / "finance-customer.png", full_page=True)

            await page.click(f"section#invoices >> text={seeded['paid']['number']}")
            await page.wait_for_url(f"**/finance/invoices/{seeded['paid']['lago_id']}")
            await page.go_back()

            await page.set_viewport_size(PHONE)
            await page.goto(f"{base}/finance/customers/acme")
            await _fits_the_screen(page)
            boxes = await page.evaluate(WIDE_BOXES)
            assert any(inner > outer for inner, outer, _ in boxes)  # some table scrolls in place
            await page.screenshot(path=ARTIFACTS / "finance-customer-phone.png", full_page=True)
            await page.goto(f"{base}/finance/customers")
            await _fits_the_screen(page)
            await page.screenshot(path=ARTIFACTS / "finance-customers-phone.png", full_page=True)

            await page.goto(f"{base}/finance/customers/nobody")
            assert "Customer not found" in await page.locator("main").inner_text()
            assert await page.locator("header nav").is_visible()
            await _fits_the_screen(page)
        finally:
            await context.close()
            await browser.close()
