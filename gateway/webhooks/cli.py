"""``gateway lago register-webhook URL`` and ``gateway webhooks status|list|replay``."""

from __future__ import annotations

import asyncio
import sys

import click

from gateway.audit.service import entry, record_many
from gateway.cli_settings import database_url_or_exit, settings_or_exit
from gateway.config import Settings
from gateway.db import Database
from gateway.integrations.lago.client import LagoClient, LagoError
from gateway.webhooks import store
from gateway.webhooks.models import DEAD, SOURCES, STATUSES
from gateway.webhooks.registration import register_lago_endpoint


def lago_client(settings: Settings) -> LagoClient:
    """The Lago client the CLI talks through (a seam for tests)."""
    return LagoClient(
        settings.lago_api_url, settings.lago_key, timeout=settings.lago_timeout_seconds
    )


@click.group("lago")
def lago() -> None:
    """Lago-side setup."""


@lago.command("register-webhook")
@click.argument("url")
@click.option(
    "--signature-algo",
    type=click.Choice(["hmac", "jwt"]),
    default="hmac",
    show_default=True,
    help="How Lago signs (hmac needs GATEWAY_LAGO_WEBHOOK_HMAC_KEY).",
)
@click.option("--name", default="billing-gateway", show_default=True)
@click.option("--event-type", "event_types", multiple=True, help="Repeatable; default: all.")
def register_webhook(
    url: str, signature_algo: str, name: str, event_types: tuple[str, ...]
) -> None:
    """Make Lago post its webhooks to URL (the gateway's /gateway/webhooks/lago), once."""
    settings = settings_or_exit()
    if settings.uses_emulator:
        click.echo(
            "configuration error: GATEWAY_LAGO_API_URL: set it to register with a real Lago "
            "(the bundled emulator lives inside `gateway serve`)",
            err=True,
        )
        sys.exit(2)
    if not url.startswith(("https://", "http://")):
        raise click.BadParameter("must be an http(s) URL", param_hint="URL")
    database_url_or_exit()  # before Lago is told anything: the registration is audited

    async def go() -> tuple[str, dict[str, object]]:
        client = lago_client(settings)
        try:
            outcome, endpoint = await register_lago_endpoint(
                client, url, algorithm=signature_algo, name=name, event_types=list(event_types)
            )
        finally:
            await client.aclose()
        database = Database(settings.database_url)
        try:
            async with database.engine.begin() as conn:
                line = entry(
                    actor="cli",
                    action="webhooks.lago.register",
                    outcome=outcome,
                    target=str(endpoint.get("lago_id")),
                    upstream="lago",
                    detail={"url": url, "signature_algo": signature_algo},
                )
                await record_many(conn, [line])
        finally:
            await database.dispose()
        return outcome, endpoint

    try:
        outcome, endpoint = asyncio.run(go())
    except LagoError as exc:
        click.echo(f"Lago refused or is unreachable: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{outcome}: {endpoint.get('lago_id')} -> {url} ({signature_algo})")
    if signature_algo == "hmac" and not settings.lago_webhook_hmac_key.get_secret_value():
        click.echo(
            "warning: GATEWAY_LAGO_WEBHOOK_HMAC_KEY is not set; copy the organization's HMAC "
            "key from Lago (Developers > Webhooks) or every webhook will be refused",
            err=True,
        )


@click.group("webhooks")
def webhooks() -> None:
    """Inspect inbound webhooks and replay dead ones."""


@webhooks.command("status")
def status() -> None:
    """Waiting, handled and dead counts, and the oldest waiting age."""

    async def go() -> store.InboxStatus:
        database = Database(database_url_or_exit())
        try:
            return await store.status(database, with_handled=True)
        finally:
            await database.dispose()

    result = asyncio.run(go())
    age = result.oldest_received_age_seconds
    click.echo(f"waiting: {result.received}")
    click.echo(f"oldest waiting age: {'-' if age is None else f'{age:.1f}s'}")
    click.echo(f"handled: {result.handled}")
    click.echo(f"dead: {result.dead}")


@webhooks.command("list")
@click.option(
    "--status",
    "status_",
    type=click.Choice(STATUSES),
    default=DEAD,
    show_default=True,
    help="Which webhooks.",
)
@click.option("--source", type=click.Choice(SOURCES), default=None, help="lago or stripe.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def list_(status_: str, source: str | None, limit: int) -> None:
    """Inbound webhooks by status (default: dead), oldest first, with their last error."""

    async def go() -> list[dict[str, object]]:
        database = Database(database_url_or_exit())
        try:
            return await store.list_rows(database, status=status_, source=source, limit=limit)
        finally:
            await database.dispose()

    rows = asyncio.run(go())
    if not rows:
        click.echo(f"no {status_} webhooks")
    for row in rows:
        click.echo(
            f"{row['id']}\t{row['source']}\t{row['event_type']}\t{row['provider_event_id']}\t"
            f"attempts={row['attempts']}\t{row['last_error'] or ''}"
        )


@webhooks.command("replay")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead webhook.")
@click.option("--id", "ids", multiple=True, type=int, help="Repeatable inbox id.")
def replay(replay_all: bool, ids: tuple[int, ...]) -> None:
    """Run the handlers of dead webhooks again (once the cause is fixed). Their relay
    message is not sent again: it was sent when they arrived."""
    if replay_all == bool(ids):
        raise click.UsageError("give --all or at least one --id")

    async def go() -> list[int]:
        database = Database(database_url_or_exit())
        try:
            async with database.engine.begin() as conn:
                requeued = await store.replay_dead(conn, None if replay_all else list(ids))
                line = entry(
                    actor="cli",
                    action="webhooks.inbound.replay",
                    outcome="success",
                    target_ids=[str(i) for i in requeued],
                )
                await record_many(conn, [line])
                return requeued
        finally:
            await database.dispose()

    requeued = asyncio.run(go())
    missing = sorted(set(ids) - set(requeued))
    click.echo(f"replaying {len(requeued)} dead webhook(s)")
    if missing:
        click.echo(f"not dead (or unknown), left alone: {', '.join(map(str, missing))}", err=True)
        sys.exit(1)


webhooks.add_command(replay, "retry")
