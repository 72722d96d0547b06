"""Finance sign-in through an OpenID Connect provider (a real one on a socket, faked)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlmodel import select

from gateway.audit.models import AuditEntry
from gateway.users.models import User
from gateway.users.service import Role, create_user, set_enabled
from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, running_gateway
from tests.finance.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider
from tests.support.served import serving


@dataclass
class Company:
    gateway: Gateway
    provider: Provider


@pytest.fixture
async def company(database_url: str, emulator: EmulatorState) -> AsyncIterator[Company]:
    provider = Provider()
    async with serving(provider.app()) as issuer:
        provider.issuer = issuer
        settings = make_settings(
            database_url,
            oidc_issuer=issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_label="Acme SSO",
        )
        async with running_gateway(settings, emulator) as gw:
            yield Company(gw, provider)


async def _person(gateway: Gateway, username: str, role: Role = Role.VIEWER) -> None:
    async with gateway.runtime.database.session() as session:
        await create_user(session, username, "Ann Lee", role, None)
        await session.commit()


async def _through_provider(company: Company, next_: str = "") -> httpx.Response:
    """What a browser does: start, follow the provider's redirect, come back to the gateway."""
    client = company.gateway.client
    params = {"next": next_} if next_ else {}
    start = await client.get("/finance/login/oidc", params=params)
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        at_provider = await browser.get(start.headers["location"])
    back = at_provider.headers["location"]
    assert back.startswith("http://gateway.test/finance/login/oidc/callback?")
    return await client.get(back.removeprefix("http://gateway.test"))


async def _audit(gateway: Gateway) -> list[tuple[str, str, str | None, object]]:
    async with gateway.runtime.database.session() as session:
        query = select(AuditEntry).where(AuditEntry.action == "finance.sign_in")
        rows = (await session.exec(query)).all()
    return [(r.actor, r.outcome, r.target, r.detail) for r in rows]


async def test_a_verified_email_links_the_account_then_the_subject_signs_in(
    company: Company,
) -> None:
    await _person(company.gateway, "ann@acme.test", Role.OPERATOR)
    company.provider.identity = {"sub": "u-123", "email": "Ann@Acme.test", "email_verified": True}
    login = await company.gateway.client.get("/finance/login")
    assert "Sign in with Acme SSO" in login.text

    answer = await _through_provider(company, next_="/finance/collection")

    assert answer.status_code == 303 and answer.headers["location"] == "/finance/collection"
    page = await company.gateway.client.get("/finance/collection")
    assert "Signed in as <strong>Ann Lee</strong> (operator)" in page.text
    async with company.gateway.runtime.database.session() as session:
        user = (await session.exec(select(User))).one()
    assert user.oidc_subject == f"{company.provider.issuer} u-123"
    await company.gateway.client.post("/finance/logout", data={"csrf_token": "x"})

    company.gateway.client.cookies.clear()
    company.provider.identity = {"sub": "u-123", "email": "ann.lee@acme.test"}  # email changed
    again = await _through_provider(company)
    assert again.status_code == 303 and again.headers["location"] == "/finance/invoices"
    assert [(a, o) for a, o, _, _ in await _audit(company.gateway)] == [
        ("user:ann@acme.test", "success"),
        ("user:ann@acme.test", "success"),
    ]


@pytest.mark.parametrize(
    "identity",
    [
        {"sub": "u-1", "email": "ann@acme.test", "email_verified": False},
        {"sub": "u-1", "email": "ann@acme.test"},
        {"sub": "u-2", "email": "bob@acme.test", "email_verified": True},
    ],
    ids=["unverified", "unstated", "no-account"],
)
async def test_only_a_verified_email_of_an_existing_account_gets_in(
    company: Company, identity: dict[str, object]
) -> None:
    await _person(company.gateway, "ann@acme.test")
    company.provider.identity = identity

    answer = await _through_provider(company)

    assert answer.status_code == 403
    assert "No active account here matches" in answer.text
    assert (await company.gateway.client.get("/finance/invoices")).status_code == 303
    assert [(o, d) for _, o, _, d in await _audit(company.gateway)] == [
        ("rejected", {"reason": "unknown_person"})
    ]


async def test_a_disabled_account_cannot_sign_in_through_the_provider(company: Company) -> None:
    await _person(company.gateway, "ann@acme.test")
    async with company.gateway.runtime.database.session() as session:
        await set_enabled(session, "ann@acme.test", False)
        await session.commit()
    company.provider.identity = {"sub": "u-1", "email": "ann@acme.test", "email_verified": True}

    answer = await _through_provider(company)

    assert answer.status_code == 403
    assert [d for _, _, _, d in await _audit(company.gateway)] == [{"reason": "disabled"}]


async def test_a_token_for_another_sign_in_or_a_forged_state_is_refused(company: Company) -> None:
    await _person(company.gateway, "ann@acme.test")
    company.provider.identity = {"sub": "u-1", "email": "ann@acme.test", "email_verified": True}
    company.provider.tamper_nonce = True

    forged_nonce = await _through_provider(company)
    forged_state = await company.gateway.client.get(
        "/finance/login/oidc/callback", params={"code": "c", "state": "guess"}
    )

    assert forged_nonce.status_code == 401 and forged_state.status_code == 401
    assert "did not complete" in forged_nonce.text
    assert (await company.gateway.client.get("/finance/invoices")).status_code == 303
    assert [o for _, o, _, _ in await _audit(company.gateway)] == ["rejected", "rejected"]


async def test_without_settings_there_is_no_provider_button(gateway: Gateway) -> None:
    login = await gateway.client.get("/finance/login")
    start = await gateway.client.get("/finance/login/oidc")

    assert "Sign in with" not in login.text
    assert start.status_code == 303 and start.headers["location"] == "/finance/login"
