"""People's accounts: the ``gateway users`` commands, password rules, the sign-in throttle."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner
from sqlmodel import select

from gateway.cli import main
from gateway.db import Database
from gateway.users import passwords
from gateway.users.models import User
from gateway.users.service import Person, Refusal, Role, sign_in
from gateway.users.throttle import SignInThrottle

GOOD = "a long enough passphrase"


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_LAGO_API_URL", "http://lago.test")
    monkeypatch.setenv("GATEWAY_LAGO_API_KEY", "k")
    return CliRunner()


def _create(cli: CliRunner, *args: str, password: str = GOOD) -> tuple[int, str]:
    result = cli.invoke(main, ["users", "create", *args, "--password-stdin"], input=f"{password}\n")
    return result.exit_code, result.output


def _stored(database_url: str, username: str) -> User:
    async def go() -> User | None:
        database = Database(database_url)
        try:
            async with database.session() as session:
                query = select(User).where(User.username == username)
                return (await session.exec(query)).first()
        finally:
            await database.dispose()

    found = asyncio.run(go())
    assert found is not None
    return found


def _sign_in(database_url: str, username: str, password: str) -> Person | Refusal:
    async def go() -> Person | Refusal:
        database = Database(database_url)
        try:
            return await sign_in(database, username, password)
        finally:
            await database.dispose()

    return asyncio.run(go())


def test_create_stores_an_argon2id_hash_never_the_password(
    cli: CliRunner, database_url: str
) -> None:
    code, output = _create(cli, "--username", "Ann", "--name", "Ann Lee", "--role", "operator")

    assert code == 0, output
    assert "created user 'ann' (operator)" in output
    user = _stored(database_url, "ann")
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert GOOD not in user.password_hash
    listed = cli.invoke(main, ["users", "list"]).output
    assert listed.splitlines() == ["ann\tAnn Lee\toperator\tactive\tnever"]


def test_duplicates_weak_passwords_and_bad_names_are_one_line_refusals(cli: CliRunner) -> None:
    assert _create(cli, "--username", "ann")[0] == 0
    duplicate = _create(cli, "--username", "ANN")
    weak = _create(cli, "--username", "bob", password="short")
    bad = _create(cli, "--username", "bob smith")

    assert duplicate[0] == 1 and "a user named 'ann' exists already" in duplicate[1]
    assert weak[0] == 1 and "at least 12 characters" in weak[1]
    assert bad[0] == 1 and "a username is" in bad[1]
    assert cli.invoke(main, ["users", "disable", "nobody"]).exit_code == 1


def test_disable_enable_and_set_password_from_the_cli(cli: CliRunner, database_url: str) -> None:
    _create(cli, "--username", "ann")
    assert cli.invoke(main, ["users", "disable", "ann"]).exit_code == 0
    assert "\tdisabled\t" in cli.invoke(main, ["users", "list"]).output
    assert _sign_in(database_url, "ann", GOOD) == Refusal("disabled")

    assert cli.invoke(main, ["users", "enable", "ann"]).exit_code == 0
    changed = cli.invoke(
        main, ["users", "set-password", "ann", "--password-stdin"], input="another passphrase\n"
    )
    assert changed.exit_code == 0
    assert _sign_in(database_url, "ann", GOOD) == Refusal("credentials")
    person = _sign_in(database_url, "ann", "another passphrase")
    assert isinstance(person, Person) and person.actor == "user:ann"

    assert cli.invoke(main, ["users", "set-role", "ann", "operator"]).exit_code == 0
    assert _stored(database_url, "ann").role == Role.OPERATOR


async def test_an_unknown_username_costs_a_hash_verification_too() -> None:
    assert await passwords.verify(None, "anything") is False
    stored = await passwords.hash_password(GOOD)
    assert await passwords.verify(stored, GOOD) is True
    assert await passwords.verify(stored, GOOD + "!") is False
    assert await passwords.verify("not a hash", GOOD) is False


def test_throttle_counts_failures_per_client_in_a_sliding_window() -> None:
    now = [1000.0]
    throttle = SignInThrottle(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") == 0
        throttle.failed("10.0.0.1")

    assert throttle.retry_after("10.0.0.1") == 61
    assert throttle.retry_after("10.0.0.2") == 0  # another client is not slowed
    now[0] += 30
    assert throttle.retry_after("10.0.0.1") == 31
    now[0] += 31
    assert throttle.retry_after("10.0.0.1") == 0  # the first failures left the window
    throttle.failed("10.0.0.1")
    throttle.succeeded("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0
