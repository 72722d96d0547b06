"""``gateway users create|list|disable|enable|set-password|set-role``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.cli_settings import database_url_or_exit
from gateway.db import Database
from gateway.errors import GatewayError
from gateway.users import service
from gateway.users.service import Role

T = TypeVar("T")
ROLES = click.Choice([r.value for r in Role])


def _in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed transaction; a refusal is one line on stderr, exit 1."""

    async def go() -> T:
        database = Database(database_url_or_exit())
        try:
            async with database.session() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await database.dispose()

    try:
        return asyncio.run(go())
    except GatewayError as exc:
        raise click.ClickException(exc.message or exc.error) from exc


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    entered: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return entered


@click.group("users")
def users() -> None:
    """Manage the people who sign in to the finance pages."""


@users.command("create")
@click.option("--username", required=True, help="Sign-in name; lower case, unique.")
@click.option("--name", "display_name", default="", help="The person's name, as pages show it.")
@click.option("--role", type=ROLES, default=Role.VIEWER.value, show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--no-password", is_flag=True, help="For a person who signs in with OIDC only.")
def create(
    username: str, display_name: str, role: str, password_stdin: bool, no_password: bool
) -> None:
    """Create a person's account (the password is asked twice unless --password-stdin)."""
    password = None if no_password else _password(password_stdin)
    user = _in_session(
        lambda s: service.create_user(s, username, display_name, Role(role), password)
    )
    click.echo(f"created user {user.username!r} ({user.role})")


@users.command("list")
def list_() -> None:
    """List people: username, name, role, state, last sign-in (never a password)."""
    for user in _in_session(service.list_users):
        state = "disabled" if user.disabled_at else "active"
        if state == "active" and user.locked_until is not None:
            state = f"locked until {user.locked_until:%Y-%m-%d %H:%M} UTC"
        last = f"{user.last_sign_in_at:%Y-%m-%d %H:%M}" if user.last_sign_in_at else "never"
        click.echo("\t".join((user.username, user.display_name, user.role, state, last)))


@users.command("disable")
@click.argument("username")
def disable(username: str) -> None:
    """Disable an account; its sessions end at once."""
    _in_session(lambda s: service.set_enabled(s, username, False))
    click.echo(f"disabled {username.lower()!r}")


@users.command("enable")
@click.argument("username")
def enable(username: str) -> None:
    """Enable a disabled account again."""
    _in_session(lambda s: service.set_enabled(s, username, True))
    click.echo(f"enabled {username.lower()!r}")


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def set_password(username: str, password_stdin: bool) -> None:
    """Replace a password; it ends the account's sessions and lifts a lock."""
    password = _password(password_stdin)
    _in_session(lambda s: service.set_password(s, username, password))
    click.echo(f"password of {username.lower()!r} replaced")


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=ROLES)
def set_role(username: str, role: str) -> None:
    """Change a role (viewer or operator); it ends the account's sessions."""
    _in_session(lambda s: service.set_role(s, username, Role(role)))
    click.echo(f"{username.lower()!r} is now {role}")
