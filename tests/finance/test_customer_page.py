"""The finance customer pages in process: the list and its search, one customer's sections
with the numbers Lago and the gateway hold, an unknown customer, and a Lago read failing."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit.service import record
from gateway.catalog.loader import load_catalog
from gateway.catalog.service import apply_catalog
from gateway.collection.models import Collection
from gateway.customers import store as links
from gateway.meters.metering import meter_rules
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from lago.emulator.customers import upsert_customer
from lago.emulator.payments import record_payment
from tests.conftest import LAGO_KEY, Gateway, make_settings, running_gateway
from tests.support.people import sign_in

CATALOG_FILE = Path(__file__).resolve().parents[2] / "lago" / "catalog.yaml"


async def stock(gateway: Gateway) -> None:
    """The shipped catalog loaded by the gateway and applied to its (emulated) Lago."""
    catalog = load_catalog(CATALOG_FILE)
    gateway.parts.catalog = catalog
    gateway.parts.meters.rules = meter_rules(catalog)
    await apply_catalog(gateway.runtime.lago, catalog)


async def _api(gateway: Gateway, path: str, body: dict[str, Any], scope: str) -> Any:
    answer = await gateway.client.post(path, json=body, headers=await gateway.headers(scope))
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


async def _usage(gateway: Gateway, code: str, count: int, **properties: Any) -> None:
    now = int(time.time())
    events = [
        {
            "transaction_id": f"acme-{code}-{i}",
            "external_subscription_id": "sub_acme",
            "code": code,
            "timestamp": now,
            "properties": properties,
        }
        for i in range(count)
    ]
    await _api(gateway, "/api/v1/events/batch", {"events": events}, "events:write")


async def seed(gateway: Gateway) -> dict[str, Any]:
    """Acme: a Basic subscription, photos and videos used, a token pack bought and tokens
    granted, invoices (one paid and partly refunded), a Lago payment, a collection attempt, a
    Stripe link and audit rows. Globex: a second customer for the search."""
    await stock(gateway)
    customer = {"external_id": "acme", "name": "Acme Inc", "email": "ap@acme.test",
                "currency": "USD"}  # fmt: skip
    await _api(gateway, "/api/v1/customers", {"customer": customer}, "billing:write")
    subscription = {"external_customer_id": "acme", "plan_code": "basic_monthly",
                    "external_id": "sub_acme"}  # fmt: skip
    await _api(gateway, "/api/v1/subscriptions", {"subscription": subscription}, "billing:write")
    upsert_customer(gateway.emulator, {"external_id": "globex", "name": "Globex Corp"})
    await _usage(gateway, "photo_generation", 3, quality="hd")
    await _usage(gateway, "video_generation", 2, seconds=6)
    emulator = gateway.emulator
    paid = emulator.issue_invoice("acme", 12_000)
    emulator.invoices[paid["lago_id"]].update(
        payment_status="succeeded", total_paid_amount_cents=12_000, total_due_amount_cents=0
    )
    record_payment(emulator, paid["lago_id"], 12_000, reference="pay-ref-1")
    unpaid = emulator.issue_invoice("acme", 4_550)
    note = await gateway.runtime.lago.call(
        "POST",
        "/credit_notes",
        json={
            "credit_note": {
                "invoice_id": paid["lago_id"],
                "reason": "product_unsatisfactory",
                "refund_amount_cents": 1_250,
                "credit_amount_cents": 0,
                "items": [{"fee_id": paid["fees"][0]["lago_id"], "amount_cents": 1_250}],
            }
        },
    )
    pack = await _api(gateway, "/gateway/customers/acme/token-packs/medium", {}, "billing:write")
    wallet_id = pack["token_pack_purchase"]["lago_wallet_id"]
    grant = {"wallet_id": wallet_id, "granted_credits": "40", "name": "Goodwill"}
    await gateway.runtime.lago.call(
        "POST", "/wallet_transactions", json={"wallet_transaction": grant}
    )
    await _local_rows(gateway, paid)
    return {"paid": paid, "unpaid": unpaid, "note": note["credit_note"], "wallet": wallet_id}


async def _local_rows(gateway: Gateway, paid: dict[str, Any]) -> None:
    now = time.time()
    async with gateway.runtime.database.session() as session:
        await links.save(session, "acme", stripe_customer_id="cus_Acme123")
        session.add(
            Collection(
                invoice_id=paid["lago_id"],
                invoice_number=paid["number"],
                attempt=1,
                kind="off_session",
                external_customer_id="acme",
                stripe_customer_id="cus_Acme123",
                payment_intent_id="pi_3CustomerPage",
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
        record(
            session, actor="user:bob", action="customers.stripe_link", outcome="success",
            target="acme", upstream="stripe", status=200,
            detail={"stripe_customer_id": "cus_Acme123", "via": "adopted"},
        )  # fmt: skip
        await session.commit()


def section(html: str, name: str) -> str:
    """The text of one ``<section id=name>`` of the page, tags removed."""
    found = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert found is not None, f"no section {name}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1)))


async def test_customer_pages_need_a_session(gateway: Gateway) -> None:
    for path in ("/finance/customers", "/finance/customers/acme"):
        answer = await gateway.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/finance/login"), path


async def test_the_list_searches_by_name_or_external_id_and_links_each(gateway: Gateway) -> None:
    await seed(gateway)
    await sign_in(gateway)

    everyone = await gateway.client.get("/finance/customers")
    assert everyone.status_code == 200
    assert '<a href="/finance/customers/acme">Acme Inc</a>' in everyone.text
    assert '<a href="/finance/customers/globex">Globex Corp</a>' in everyone.text
    assert "2 customers" in everyone.text

    by_name = await gateway.client.get("/finance/customers", params={"q": "globex co"})
    assert "/finance/customers/globex" in by_name.text
    assert "/finance/customers/acme" not in by_name.text
    by_id = await gateway.client.get("/finance/customers", params={"q": "acm"})
    assert "/finance/customers/acme" in by_id.text
    assert "/finance/customers/globex" not in by_id.text
    nobody = await gateway.client.get("/finance/customers", params={"q": "initech"})
    assert "No customer matches." in nobody.text


async def test_the_list_pages_through_lago_customers(gateway: Gateway) -> None:
    for n in range(30):
        upsert_customer(gateway.emulator, {"external_id": f"c{n:02d}", "name": f"Shop {n:02d}"})
    await sign_in(gateway)

    first = await gateway.client.get("/finance/customers", params={"q": "shop"})
    second = await gateway.client.get("/finance/customers", params={"q": "shop", "page": 2})

    assert first.text.count('href="/finance/customers/c') == 25
    assert 'href="/finance/customers?q=shop&amp;page=2"' in first.text
    assert second.text.count('href="/finance/customers/c') == 5
    assert "Page 2 of 2" in second.text


async def test_customer_page_shows_each_section_with_its_numbers(gateway: Gateway) -> None:
    seeded = await seed(gateway)
    await sign_in(gateway)

    answer = await gateway.client.get("/finance/customers/acme")

    assert answer.status_code == 200, answer.text
    html = answer.text
    assert 'href="/finance/customers" class="active"' in html
    customer = section(html, "customer")
    assert "Acme Inc" in customer and "ap@acme.test" in customer and "USD" in customer
    assert "linked cus_Acme123" in section(html, "stripe")
    subscriptions = section(html, "subscriptions")
    assert "sub_acme basic_monthly active" in subscriptions
    assert time.strftime("%Y-%m-", time.gmtime()) in subscriptions

    usage = section(html, "usage")
    assert "Basic" in usage
    assert "photo_generation quality=hd: 3 3 200" in usage  # 3 used of 200 included
    assert "video_generation 12 0 none included" in usage
    assert "not in plan" in usage  # Basic has no video feature
    assert "hd_photos · max_resolution 2048" in usage
    assert html.count('<svg class="meter"') == 1
    assert 'width="2" height="8"' in html  # 3 / 200 rounds to 2 %
    assert "Tokens available -36" in usage  # 12 video seconds beyond the allowance: 36 tokens
    assert "pending 199.8 · bonus owed 75.2" in usage  # the pack, not paid yet

    wallets = section(html, "wallets")
    assert "+40.0" in wallets and "Goodwill" in wallets  # granted, settled: 2.00 USD
    assert "2.00 USD" in wallets
    assert "+199.8" in wallets and "pending" in wallets  # the pack's paid credits
    assert "40.0 credits (2.00 USD)" in wallets

    invoices = section(html, "invoices")
    assert seeded["paid"]["number"] in invoices and "120.00 USD" in invoices
    assert seeded["unpaid"]["number"] in invoices and "45.50 USD" in invoices
    assert f'href="/finance/invoices/{seeded["paid"]["lago_id"]}"' in html

    payments = section(html, "payments")
    assert "120.00 USD" in payments and "pay-ref-1" in payments
    assert "pi_3CustomerPage" in payments  # the gateway's own collection attempt

    notes = section(html, "credit-notes")
    assert seeded["note"]["number"] in notes
    assert "12.50 USD" in notes and "pending" in notes
    assert seeded["paid"]["number"] in notes

    audit = section(html, "audit")
    assert "customers.stripe_link" in audit
    assert "stripe_customer_id: cus_Acme123; via: adopted" in audit
    assert "user:bob" in audit
    assert "packs.token_pack.buy success 201 pack: medium" in audit
    assert "customers.upsert" in audit
    assert "\u22120.00" not in html  # never a negative zero


async def test_invoices_are_listed_newest_first(gateway: Gateway) -> None:
    upsert_customer(gateway.emulator, {"external_id": "acme", "name": "Acme", "currency": "USD"})
    first = gateway.emulator.issue_invoice("acme", 1_000)
    gateway.emulator.invoices[first["lago_id"]]["issuing_date"] = "2026-01-05"
    later = gateway.emulator.issue_invoice("acme", 2_000)
    gateway.emulator.invoices[later["lago_id"]]["issuing_date"] = "2026-03-05"
    await sign_in(gateway)

    html = (await gateway.client.get("/finance/customers/acme")).text

    invoices = section(html, "invoices")
    assert invoices.index(later["number"]) < invoices.index(first["number"])
    assert "No credit notes." in section(html, "credit-notes")
    assert "No subscriptions." in section(html, "subscriptions")


async def test_an_unknown_customer_is_a_404_page_with_navigation(gateway: Gateway) -> None:
    await sign_in(gateway)

    answer = await gateway.client.get("/finance/customers/nobody")

    assert answer.status_code == 404
    assert "Customer not found" in answer.text
    assert "nobody" in answer.text
    assert '<a href="/finance/invoices"' in answer.text  # the navigation is there
    assert 'href="/finance/customers" class="active"' in answer.text


class OneReadDown(httpx.AsyncBaseTransport):
    """Lago in process, but reads whose path ends with ``failing`` get Lago's 503."""

    def __init__(self, inner: httpx.AsyncBaseTransport, failing: str) -> None:
        self.inner, self.failing, self.failed = inner, failing, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith(self.failing):
            self.failed += 1
            body = {"status": 503, "error": "Service Unavailable"}
            return httpx.Response(503, json=body, headers={"Retry-After": "1"})
        return await self.inner.handle_async_request(request)


@pytest.fixture(params=[("/payments", "payments"), ("/credit_notes", "credit-notes")])
async def one_read_down(
    request: pytest.FixtureRequest, database_url: str, emulator: EmulatorState
) -> AsyncIterator[tuple[Gateway, str]]:
    """The gateway with Lago failing every read of one list; and the section showing it."""
    failing, section_name = request.param
    lago = create_emulator(emulator, api_key=LAGO_KEY)
    transport = OneReadDown(httpx.ASGITransport(app=lago), failing)
    settings = make_settings(database_url)
    async with running_gateway(
        settings, emulator, check_contract=False, lago_transport=transport
    ) as gateway:
        yield gateway, section_name
    assert transport.failed > 0


async def test_one_lago_read_failing_marks_only_its_section(
    one_read_down: tuple[Gateway, str],
) -> None:
    gateway, failed = one_read_down
    seeded = await seed(gateway)
    await sign_in(gateway)

    answer = await gateway.client.get("/finance/customers/acme")

    assert answer.status_code == 200
    html = answer.text
    assert "Lago did not answer" in section(html, failed)
    assert html.count("Lago did not answer") == 1
    everything = ("customer", "subscriptions", "usage", "wallets", "invoices", "payments")
    for name in (*everything, "credit-notes", "audit"):
        if name != failed:
            assert "Lago did not answer" not in section(html, name), name
    assert "pi_3CustomerPage" in section(html, "payments")  # the gateway's own rows stay
    assert seeded["paid"]["number"] in section(html, "invoices")
    assert "photo_generation" in section(html, "usage")


async def test_lago_down_for_the_list_says_so(gateway: Gateway) -> None:
    await sign_in(gateway)
    gateway.emulator.faults.outage(60)
    try:
        answer = await gateway.client.get("/finance/customers")
        detail = await gateway.client.get("/finance/customers/acme")
    finally:
        gateway.emulator.faults.clear()

    assert answer.status_code == 200
    assert "Lago did not answer" in answer.text
    assert detail.status_code == 200  # not a 404: Lago said nothing about the customer
    assert "Lago did not answer: the customer" in detail.text
