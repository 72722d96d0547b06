"""``gateway outbox status|replay``."""

from __future__ import annotations

import asyncio
import sys

import click

from gateway.audit.service import record
from gateway.cli_settings import database_url_or_exit
from gateway.db import Database
from gateway.usage import store


@click.group("outbox")
def outbox() -> None:
    """Inspect and replay the usage outbox."""


@outbox.command("status")
def status() -> None:
    """Pending count, oldest pending age, dead count, forward rate."""

    async def go() -> store.OutboxStatus:
        database = Database(database_url_or_exit())
        try:
            return await store.status(database)
        finally:
            await database.dispose()

    result = asyncio.run(go())
    age = (
        "-"
        if result.oldest_pending_age_seconds is None
        else f"{result.oldest_pending_age_seconds:.1f}s"
    )
    click.echo(f"pending: {result.pending}")
    click.echo(f"oldest pending age: {age}")
    click.echo(f"dead: {result.dead}")
    click.echo(f"forward rate: {result.forward_rate_per_second:.1f} events/s (last minute)")


@outbox.command("replay")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead event.")
@click.option("--transaction-id", "transaction_ids", multiple=True, help="Repeatable.")
def replay(replay_all: bool, transaction_ids: tuple[str, ...]) -> None:
    """Re-queue dead events once their cause is fixed."""
    if replay_all == bool(transaction_ids):
        raise click.UsageError("give --all or at least one --transaction-id")

    async def go() -> list[str]:
        database = Database(database_url_or_exit())
        try:
            async with database.session() as session:
                conn = await session.connection()
                replayed = await store.replay_dead(
                    conn, None if replay_all else list(transaction_ids)
                )
                record(
                    session,
                    actor="cli",
                    action="usage.outbox.replay",
                    outcome="success",
                    target_ids=replayed,
                )
                await session.commit()
                return replayed
        finally:
            await database.dispose()

    replayed = asyncio.run(go())
    click.echo(f"replayed {len(replayed)} dead event(s)")
    missing = sorted(set(transaction_ids) - set(replayed))
    if missing:
        click.echo(f"not dead (or unknown), left alone: {', '.join(missing)}", err=True)
        sys.exit(1)
