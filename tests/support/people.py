"""People for the finance pages: an account made in the database, and a signed-in client."""

from __future__ import annotations

import re

import httpx

from gateway.users.service import Role, create_user
from tests.conftest import Gateway

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF field in the page"
    return found.group(1)


async def make_person(
    gateway: Gateway, username: str = "ann", role: Role = Role.VIEWER, name: str = "Ann Lee"
) -> str:
    """An account with ``PASSWORD``; returns its username."""
    async with gateway.runtime.database.session() as session:
        await create_user(session, username, name, role, PASSWORD)
        await session.commit()
    return username


async def post_sign_in(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, next_: str = ""
) -> httpx.Response:
    """Fetch the sign-in form and post it (with its CSRF token)."""
    form = await client.get("/finance/login")
    return await client.post(
        "/finance/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_of(form.text),
            "next": next_,
        },
    )


async def sign_in(
    gateway: Gateway,
    client: httpx.AsyncClient | None = None,
    role: Role = Role.VIEWER,
    username: str = "ann",
) -> str:
    """Make ``username`` with ``role`` and sign ``client`` in (the gateway's own by default)."""
    await make_person(gateway, username, role)
    answer = await post_sign_in(client or gateway.client, username)
    assert answer.status_code == 303, answer.text
    return username
