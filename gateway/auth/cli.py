"""``gateway keys create|list|revoke``."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from gateway.auth import service
from gateway.cli_settings import database_url_or_exit
from gateway.db import Database
from gateway.errors import Conflict, NotFound

T = TypeVar("T")


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; an unknown or duplicate name is one line on stderr and exit 1."""
    try:
        return asyncio.run(work)
    except (Conflict, NotFound) as exc:
        raise click.ClickException(str(exc)) from exc


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("must not be blank")
    return value


@click.group("keys")
def keys() -> None:
    """Manage gateway API keys."""


@keys.command("create")
@click.option(
    "--name", required=True, callback=_name, help="A unique name; it appears in the audit log."
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice([s.value for s in service.Scope]),
    help="Repeat for several scopes.",
)
def create(name: str, scopes: tuple[str, ...]) -> None:
    """Create a key; it is printed once, alone on the last line."""

    async def go() -> str:
        database = Database(database_url_or_exit())
        try:
            async with database.session() as session:
                key = await service.create_key(session, name, list(scopes))
                await session.commit()
                return key
        finally:
            await database.dispose()

    key = _run(go())
    click.echo(
        f"created key {name!r} with scopes {' '.join(sorted(scopes))}; store it now:", err=False
    )
    click.echo(key)


@keys.command("list")
def list_() -> None:
    """List keys (names, scopes, state; never the keys)."""

    async def go() -> list[str]:
        database = Database(database_url_or_exit())
        try:
            async with database.session() as session:
                rows = await service.list_keys(session)
        finally:
            await database.dispose()
        return [
            "\t".join(
                (
                    k.name,
                    k.scopes,
                    "revoked" if k.revoked_at else "active",
                    f"{k.created_at:%Y-%m-%d}",
                )
            )
            for k in rows
        ]

    for line in asyncio.run(go()):
        click.echo(line)


@keys.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke a key by name."""

    async def go() -> None:
        database = Database(database_url_or_exit())
        try:
            async with database.session() as session:
                await service.revoke_key(session, name)
                await session.commit()
        finally:
            await database.dispose()

    _run(go())
    click.echo(f"revoked {name!r}")
