"""``/docs`` renders in a real browser with every other host unreachable: Swagger UI's assets
come from the gateway itself (Debian's Chromium driven by Playwright; see
tests/finance/test_browser.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.finance.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.served import serving

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)


async def test_docs_render_with_no_other_host_reachable(gateway: Gateway) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    ARTIFACTS.mkdir(exist_ok=True)
    elsewhere: list[str] = []

    async with serving(gateway.app) as base, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = await browser.new_page()

        async def offline(route: Any) -> None:
            if route.request.url.startswith(base):
                await route.continue_()
            else:
                elsewhere.append(route.request.url)
                await route.abort()

        try:
            await page.route("**/*", offline)
            await page.goto(f"{base}/docs")
            title = page.locator(".swagger-ui .info .title")
            await title.wait_for(timeout=15_000)
            text = await title.inner_text()
            await page.locator(".opblock").first.wait_for(timeout=15_000)
            await page.screenshot(path=ARTIFACTS / "docs.png")
        finally:
            await browser.close()

    assert text.startswith("Billing gateway")  # Swagger UI 5 reads FastAPI's OpenAPI 3.1
    assert elsewhere == []
