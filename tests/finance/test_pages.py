"""Finance pages in process: sign-in, CSRF, sessions, filters and totals, one invoice."""

from __future__ import annotations

import re

import httpx
from sqlmodel import select

from gateway.audit.models import AuditEntry
from gateway.auth.service import revoke_key
from lago.emulator.customers import upsert_customer
from tests.conftest import Gateway

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF field in the page"
    return found.group(1)


async def _sign_in(gateway: Gateway, client: httpx.AsyncClient, *scopes: str) -> str:
    key = await gateway.key(*(scopes or ("billing:read",)), name="finance-ann")
    form = await client.get("/finance/login")
    answer = await client.post(
        "/finance/login", data={"api_key": key, "csrf_token": _csrf(form.text), "next": ""}
    )
    assert answer.status_code == 303, answer.text
    return key


def _seed(gateway: Gateway) -> dict[str, str]:
    emulator = gateway.emulator
    upsert_customer(emulator, {"external_id": "acme", "name": "Acme Inc", "currency": "USD"})
    upsert_customer(emulator, {"external_id": "globex", "name": "Globex", "currency": "EUR"})
    paid = emulator.issue_invoice("acme", 12_000)
    emulator.invoices[paid["lago_id"]].update(
        payment_status="succeeded", total_paid_amount_cents=12_000, total_due_amount_cents=0
    )
    late = emulator.issue_invoice("acme", 5_000)
    emulator.invoices[late["lago_id"]]["payment_overdue"] = True
    euro = emulator.issue_invoice("globex", 7_000, currency="EUR")
    return {"paid": paid["lago_id"], "late": late["lago_id"], "euro": euro["lago_id"]}


async def test_no_page_is_readable_without_signing_in(gateway: Gateway) -> None:
    for path in (
        "/finance/",
        "/finance/invoices",
        "/finance/collection",
        "/finance/invoices/export.csv",
        "/finance/invoices/x/pdf",
    ):
        answer = await gateway.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/finance/login"), path


async def test_sign_in_needs_the_forms_csrf_token(gateway: Gateway) -> None:
    key = await gateway.key("billing:read")
    await gateway.client.get("/finance/login")

    forged = await gateway.client.post(
        "/finance/login", data={"api_key": key, "csrf_token": "guess"}
    )

    assert forged.status_code == 403
    assert (await gateway.client.get("/finance/invoices")).status_code == 303


async def test_wrong_or_unscoped_keys_are_refused_and_audited(gateway: Gateway) -> None:
    events_only = await gateway.key("events:write")
    for candidate in ("gw_nope_nope", events_only):
        form = await gateway.client.get("/finance/login")
        answer = await gateway.client.post(
            "/finance/login", data={"api_key": candidate, "csrf_token": _csrf(form.text)}
        )
        assert answer.status_code == 401
        assert "lacks the billing:read scope" in answer.text
    async with gateway.runtime.database.session() as session:
        rows = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "finance.sign_in"))
        ).all()
    assert [row.outcome for row in rows] == ["rejected", "rejected"]


async def test_session_cookie_is_httponly_lax_and_holds_no_key(gateway: Gateway) -> None:
    key = await gateway.key("billing:read")
    form = await gateway.client.get("/finance/login")
    answer = await gateway.client.post(
        "/finance/login", data={"api_key": key, "csrf_token": _csrf(form.text)}
    )

    cookie = answer.headers["set-cookie"]
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "path=/finance" in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http here; https sets Secure
    assert key.split("_", 2)[2] not in cookie  # the secret (which may hold "_" itself)
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


async def test_cookie_is_secure_over_https(gateway: Gateway) -> None:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="https://gateway.test"
    )
    async with client:
        key = await gateway.key("billing:read")
        form = await client.get("/finance/login")
        answer = await client.post(
            "/finance/login", data={"api_key": key, "csrf_token": _csrf(form.text)}
        )
    assert "secure" in answer.headers["set-cookie"].lower()


async def test_invoice_list_filters_and_totals_per_currency(gateway: Gateway) -> None:
    ids = _seed(gateway)
    await _sign_in(gateway, gateway.client)

    everything = (await gateway.client.get("/finance/invoices")).text
    acme = (
        await gateway.client.get(
            "/finance/invoices", params={"external_customer_id": "acme", "currency": "usd"}
        )
    ).text
    bad = await gateway.client.get("/finance/invoices", params={"issuing_date_from": "soon"})

    assert "170.00 USD" in everything  # 120 + 50 issued
    assert "120.00 USD" in everything  # paid
    assert "50.00 USD" in everything  # outstanding and overdue
    assert "70.00 EUR" in everything
    assert ids["euro"] not in acme
    assert ids["late"] in acme
    assert "export.csv?external_customer_id=acme&amp;currency=usd" in acme
    assert bad.status_code == 200
    assert "Some filters are not valid: issuing_date_from" in bad.text


async def test_one_invoice_shows_lines_totals_and_audit(gateway: Gateway) -> None:
    ids = _seed(gateway)
    reader = await gateway.headers("billing:read")
    downloaded = await gateway.client.post(
        f"/api/v1/invoices/{ids['late']}/download", headers=reader
    )
    assert downloaded.status_code == 200
    await _sign_in(gateway, gateway.client)

    page = await gateway.client.get(f"/finance/invoices/{ids['late']}")

    assert page.status_code == 200
    assert "Acme Inc" in page.text
    assert "50.00 USD" in page.text
    assert "invoices.download" in page.text  # the audit trail of this invoice
    assert "Download PDF" in page.text
    assert "Retry payment now" not in page.text  # read-only key, and no Stripe here


async def test_revoking_the_key_ends_the_session(gateway: Gateway) -> None:
    await _sign_in(gateway, gateway.client)
    assert (await gateway.client.get("/finance/collection")).status_code == 200
    async with gateway.runtime.database.session() as session:
        await revoke_key(session, "finance-ann")
        await session.commit()

    answer = await gateway.client.get("/finance/collection")

    assert answer.status_code == 303


async def test_sign_out_needs_csrf_and_ends_the_session(gateway: Gateway) -> None:
    await _sign_in(gateway, gateway.client)
    page = await gateway.client.get("/finance/invoices")

    forged = await gateway.client.post("/finance/logout", data={})
    assert forged.status_code == 403
    done = await gateway.client.post("/finance/logout", data={"csrf_token": _csrf(page.text)})

    assert done.status_code == 303
    assert (await gateway.client.get("/finance/invoices")).status_code == 303


async def test_next_is_kept_and_never_leaves_the_finance_pages(gateway: Gateway) -> None:
    first = await gateway.client.get("/finance/collection")
    assert first.headers["location"] == "/finance/login?next=%2Ffinance%2Fcollection"
    key = await gateway.key("billing:read")
    form = await gateway.client.get("/finance/login", params={"next": "https://evil.test/"})
    assert 'value="/finance/invoices"' in form.text
    answer = await gateway.client.post(
        "/finance/login",
        data={"api_key": key, "csrf_token": _csrf(form.text), "next": "/finance/collection"},
    )
    assert answer.headers["location"] == "/finance/collection"
