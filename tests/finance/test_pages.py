"""Finance pages in process: sign-in, CSRF, sessions, filters and totals, one invoice."""

from __future__ import annotations

import httpx
from sqlmodel import select

from gateway.audit.models import AuditEntry
from gateway.users.service import Role, set_enabled, set_password, set_role
from lago.emulator.customers import upsert_customer
from tests.conftest import Gateway
from tests.support.people import PASSWORD, csrf_of, make_person, post_sign_in, sign_in


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
    await make_person(gateway)
    await gateway.client.get("/finance/login")

    forged = await gateway.client.post(
        "/finance/login", data={"username": "ann", "password": PASSWORD, "csrf_token": "guess"}
    )

    assert forged.status_code == 403
    assert (await gateway.client.get("/finance/invoices")).status_code == 303


async def test_wrong_passwords_and_unknown_people_are_refused_and_audited(
    gateway: Gateway,
) -> None:
    await make_person(gateway)
    for username, password in (("ann", "not her password"), ("nobody", PASSWORD)):
        answer = await post_sign_in(gateway.client, username, password)
        assert answer.status_code == 401
        assert "do not match an active account" in answer.text
        assert password not in answer.text
    rows = await _sign_in_audit(gateway)
    assert [(r.outcome, r.target, r.detail) for r in rows] == [
        ("rejected", "ann", {"reason": "credentials"}),
        ("rejected", "nobody", {"reason": "credentials"}),
    ]


async def test_a_person_is_audited_by_name_and_the_page_shows_their_role(gateway: Gateway) -> None:
    await sign_in(gateway, role=Role.OPERATOR)

    page = await gateway.client.get("/finance/invoices")

    assert "Signed in as <strong>Ann Lee</strong> (operator)" in page.text
    rows = await _sign_in_audit(gateway)
    assert [(r.actor, r.outcome) for r in rows] == [("user:ann", "success")]


async def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(
    gateway: Gateway,
) -> None:
    await make_person(gateway)
    statuses = [
        (await post_sign_in(gateway.client, "ann", f"wrong {n}")).status_code for n in range(5)
    ]
    locked = await post_sign_in(gateway.client, "ann")

    assert statuses == [401, 401, 401, 401, 429]
    assert locked.status_code == 429
    assert "Try again in 15 minutes" in locked.text
    assert (await gateway.client.get("/finance/invoices")).status_code == 303
    async with gateway.runtime.database.session() as session:
        await set_password(session, "ann", "a brand new passphrase")
        await session.commit()
    assert (await post_sign_in(gateway.client, "ann", "a brand new passphrase")).status_code == 303


async def test_one_client_trying_many_usernames_is_slowed_down(gateway: Gateway) -> None:
    finance = next(r for r in gateway.app.routes if getattr(r, "path", "") == "/finance")
    throttle = finance.app.state.sign_in_throttle  # type: ignore[attr-defined]
    throttle.limit = 3
    await make_person(gateway)
    refused = [
        (await post_sign_in(gateway.client, f"guess{n}", "whatever")).status_code for n in range(3)
    ]
    blocked = await post_sign_in(gateway.client, "ann")  # the right password, too late

    assert refused == [401, 401, 401]
    assert blocked.status_code == 429
    assert [r.detail for r in await _sign_in_audit(gateway)][-1] == {"reason": "throttled"}


async def _sign_in_audit(gateway: Gateway) -> list[AuditEntry]:
    async with gateway.runtime.database.session() as session:
        query = select(AuditEntry).where(AuditEntry.action == "finance.sign_in")
        return list((await session.exec(query.order_by(AuditEntry.id))).all())  # type: ignore[arg-type]


async def test_session_cookie_is_httponly_lax_and_holds_no_password(gateway: Gateway) -> None:
    await make_person(gateway)
    answer = await post_sign_in(gateway.client, "ann")

    cookie = answer.headers["set-cookie"]
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "path=/finance" in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http here; https sets Secure
    assert PASSWORD.split()[0] not in cookie
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


async def test_cookie_is_secure_over_https(gateway: Gateway) -> None:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="https://gateway.test"
    )
    async with client:
        await make_person(gateway)
        answer = await post_sign_in(client, "ann")
    assert "secure" in answer.headers["set-cookie"].lower()


async def test_invoice_list_filters_and_totals_per_currency(gateway: Gateway) -> None:
    ids = _seed(gateway)
    await sign_in(gateway)

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
    assert "Some filters are not valid: Issued from." in bad.text


async def test_one_invoice_shows_lines_totals_and_audit(gateway: Gateway) -> None:
    ids = _seed(gateway)
    reader = await gateway.headers("billing:read")
    downloaded = await gateway.client.post(
        f"/api/v1/invoices/{ids['late']}/download", headers=reader
    )
    assert downloaded.status_code == 200
    await sign_in(gateway)

    page = await gateway.client.get(f"/finance/invoices/{ids['late']}")

    assert page.status_code == 200
    assert "Acme Inc" in page.text
    assert "50.00 USD" in page.text
    assert "invoices.download" in page.text  # the audit trail of this invoice
    assert "Download PDF" in page.text
    assert "Retry payment now" not in page.text  # a viewer, and no Stripe here


async def test_disabling_the_account_or_a_new_role_ends_the_session(gateway: Gateway) -> None:
    await sign_in(gateway)
    assert (await gateway.client.get("/finance/collection")).status_code == 200
    async with gateway.runtime.database.session() as session:
        await set_role(session, "ann", Role.OPERATOR)
        await session.commit()
    assert (await gateway.client.get("/finance/collection")).status_code == 303

    assert (await post_sign_in(gateway.client, "ann")).status_code == 303
    async with gateway.runtime.database.session() as session:
        await set_enabled(session, "ann", False)
        await session.commit()
    assert (await gateway.client.get("/finance/collection")).status_code == 303
    assert (await post_sign_in(gateway.client, "ann")).status_code == 401


async def test_sign_out_needs_csrf_and_ends_the_session(gateway: Gateway) -> None:
    await sign_in(gateway)
    page = await gateway.client.get("/finance/invoices")

    forged = await gateway.client.post("/finance/logout", data={})
    assert forged.status_code == 403
    done = await gateway.client.post("/finance/logout", data={"csrf_token": csrf_of(page.text)})

    assert done.status_code == 303
    assert (await gateway.client.get("/finance/invoices")).status_code == 303


async def test_next_is_kept_and_never_leaves_the_finance_pages(gateway: Gateway) -> None:
    first = await gateway.client.get("/finance/collection")
    assert first.headers["location"] == "/finance/login?next=%2Ffinance%2Fcollection"
    await make_person(gateway)
    form = await gateway.client.get("/finance/login", params={"next": "https://evil.test/"})
    assert 'value="/finance/invoices"' in form.text
    answer = await post_sign_in(gateway.client, "ann", next_="/finance/collection")
    assert answer.headers["location"] == "/finance/collection"
