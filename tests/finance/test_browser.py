"""The finance pages in a real browser: Debian's Chromium driven by Playwright, against a
real uvicorn server on 127.0.0.1. Screenshots of each page land in ``tests/artifacts/``.

CI needs: ``apt-get install -y chromium`` and ``pip install playwright`` (Playwright's own
browser download is not used: ``executable_path`` points at Debian's Chromium).
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.collection.models import Collection
from gateway.users.service import Role
from lago.emulator.customers import upsert_customer
from tests.conftest import Gateway
from tests.support.people import PASSWORD, make_person
from tests.support.served import serving

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)


async def _seed(gateway: Gateway) -> dict[str, Any]:
    emulator = gateway.emulator
    upsert_customer(
        emulator,
        {"external_id": "acme", "name": "Acme Inc", "email": "ap@acme.test", "currency": "USD"},
    )
    upsert_customer(emulator, {"external_id": "globex", "name": "Globex", "currency": "EUR"})
    acme = [emulator.issue_invoice("acme", cents) for cents in (12_000, 4_550, 990)]
    emulator.issue_invoice("globex", 7_000, currency="EUR")
    emulator.issue_invoice("globex", 300, currency="EUR", status="draft")
    paid = acme[0]
    emulator.invoices[paid["lago_id"]].update(
        payment_status="succeeded", total_paid_amount_cents=12_000, total_due_amount_cents=0
    )
    now = time.time()
    async with gateway.runtime.database.session() as session:
        session.add(
            Collection(
                invoice_id=paid["lago_id"],
                invoice_number=paid["number"],
                attempt=1,
                kind="off_session",
                external_customer_id="acme",
                stripe_customer_id="cus_acme",
                payment_intent_id="pi_3Browser",
                amount_cents=12_000,
                currency="USD",
                status="succeeded",
                idempotency_key=f"invoice-{paid['lago_id']}-attempt-1",
                lago_status="succeeded",
                created_by="collector",
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()
    return {"paid": paid}


async def test_finance_pages_in_chromium(gateway: Gateway) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    ARTIFACTS.mkdir(exist_ok=True)
    seeded = await _seed(gateway)
    await make_person(gateway, "ann", Role.VIEWER)

    async with serving(gateway.app) as base, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = await browser.new_context(accept_downloads=True)
        page = await context.new_page()
        try:
            await page.goto(f"{base}/finance/invoices")
            assert page.url.startswith(f"{base}/finance/login")  # nothing without a session
            await page.screenshot(path=ARTIFACTS / "finance-login.png", full_page=True)

            await page.fill("input[name=username]", "ann")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/finance/invoices")
            assert await page.locator("table.invoices tbody tr").count() == 5
            await page.screenshot(path=ARTIFACTS / "finance-invoices.png", full_page=True)

            await page.fill("input[name=external_customer_id]", "acme")
            await page.select_option("select[name=payment_status]", "pending")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**/finance/invoices?*")
            assert await page.locator("table.invoices tbody tr").count() == 2
            totals = await page.locator("table.totals").inner_text()
            assert "55.40 USD" in totals  # 45.50 + 9.90 outstanding
            await page.screenshot(path=ARTIFACTS / "finance-invoices-filtered.png", full_page=True)

            async with page.expect_download() as started:
                await page.click("a.export")
            download = await started.value
            content = Path(await download.path()).read_text()
            rows = list(csv.DictReader(io.StringIO(content)))
            assert sorted(row["total_amount"] for row in rows) == ["45.50", "9.90"]
            assert {row["payment_status"] for row in rows} == {"pending"}

            await page.goto(f"{base}/finance/invoices")
            await page.click(f"text={seeded['paid']['number']}")
            await page.wait_for_url(f"**/finance/invoices/{seeded['paid']['lago_id']}")
            body = await page.locator("main").inner_text()
            assert "Acme Inc" in body
            assert "pi_3Browser" in body
            assert "Refunds and credits are for operators" in body  # ann is a viewer
            assert await page.locator("text=Issue credit note").count() == 0
            assert "120.00 USD" in body
            await page.screenshot(path=ARTIFACTS / "finance-invoice.png", full_page=True)

            await page.click("text=Collection")
            await page.wait_for_url(f"{base}/finance/collection")
            assert "Outstanding" in await page.locator("main").inner_text()
            await page.screenshot(path=ARTIFACTS / "finance-collection.png", full_page=True)

            await page.click("text=Sign out")
            await page.wait_for_url(f"{base}/finance/login")
            await page.goto(f"{base}/finance/collection")
            assert page.url.startswith(f"{base}/finance/login")
        finally:
            await context.close()
            await browser.close()


PHONE = {"width": 390, "height": 844}
OVERFLOW = "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"


async def test_invoice_pages_fit_a_phone_and_sort_and_search(gateway: Gateway) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    ARTIFACTS.mkdir(exist_ok=True)
    seeded = await _seed(gateway)
    await make_person(gateway, "olga", Role.OPERATOR)

    async with serving(gateway.app) as base, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = await browser.new_context(viewport=PHONE, is_mobile=True)
        page = await context.new_page()
        try:
            await page.goto(f"{base}/finance/login")
            await page.fill("input[name=username]", "olga")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/finance/invoices")
            assert await page.evaluate(OVERFLOW) <= 0  # the table scrolls in its own box
            await page.screenshot(path=ARTIFACTS / "finance-invoices-phone.png", full_page=True)

            await page.click("table.invoices th >> text=Total")
            await page.wait_for_url("**sort=total**")
            cells = await page.locator("table.invoices tbody td.num:nth-child(8)").all_inner_texts()
            usd = [float(c.split()[0].replace(",", "")) for c in cells if c.endswith("USD")]
            assert usd == sorted(usd) and len(usd) == 3

            await page.fill("input[name=search_term]", seeded["paid"]["number"])
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**search_term=**")
            assert await page.locator("table.invoices tbody tr").count() == 1

            await page.goto(f"{base}/finance/invoices/{seeded['paid']['lago_id']}")
            assert await page.evaluate(OVERFLOW) <= 0
            assert await page.locator("text=Issue credit note").count() == 1  # an operator
            await page.screenshot(path=ARTIFACTS / "finance-invoice-phone.png", full_page=True)
            await page.goto(f"{base}/finance/collection")
            assert await page.evaluate(OVERFLOW) <= 0
            await page.screenshot(path=ARTIFACTS / "finance-collection-phone.png", full_page=True)
            await page.goto(f"{base}/finance/nowhere")
            assert await page.locator("header nav").count() == 1  # a 404 keeps the navigation
        finally:
            await context.close()
            await browser.close()
