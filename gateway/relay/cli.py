"""``gateway relay endpoints|redeliver|recover``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import entry, record_many
from gateway.cli_settings import database_url_or_exit
from gateway.db import Database
from gateway.errors import GatewayError
from gateway.relay import messages, subscribers

T = TypeVar("T")


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    async def go() -> T:
        database = Database(database_url_or_exit())
        try:
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(go())
    except GatewayError as exc:
        raise click.ClickException(exc.message or exc.error) from exc


@click.group("relay")
def relay() -> None:
    """Relay subscribers and message redelivery."""


@relay.command("endpoints")
def endpoints() -> None:
    """List subscriber endpoints (secrets are not shown)."""

    async def go(database: Database) -> list[dict[str, object]]:
        async with database.session() as session:
            return [subscribers.describe(e) for e in await subscribers.list_endpoints(session)]

    for endpoint in _run(go):
        state = "enabled" if endpoint["enabled"] else f"disabled ({endpoint['disabled_reason']})"
        types = ",".join(endpoint["filter_types"])  # type: ignore[arg-type]
        click.echo(f"{endpoint['id']}  {state}  {types}  {endpoint['url']}")


def _audited(
    action: str, target: str, change: Callable[[AsyncConnection], Awaitable[list[str]]]
) -> Callable[[Database], Awaitable[list[str]]]:
    async def go(database: Database) -> list[str]:
        async with database.engine.begin() as conn:
            ids = await change(conn)
            await record_many(
                conn,
                [
                    entry(
                        actor="cli", action=action, outcome="success", target=target, target_ids=ids
                    )
                ],
            )
        return ids

    return go


@relay.command("redeliver")
@click.argument("message_id")
@click.option(
    "--endpoint", "endpoint_id", help="Only to this endpoint (default: every subscriber)."
)
def redeliver(message_id: str, endpoint_id: str | None) -> None:
    """Send a message again under the same webhook-id."""
    targets = _run(
        _audited(
            "relay.message.redeliver",
            message_id,
            lambda conn: messages.redeliver(conn, message_id, endpoint_id),
        )
    )
    click.echo(f"queued {message_id} for {len(targets)} endpoint(s): {' '.join(targets)}")


@relay.command("recover")
@click.argument("endpoint_id")
@click.option(
    "--since",
    required=True,
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    help="RFC 3339 (UTC when no offset is given).",
)
def recover(endpoint_id: str, since: datetime) -> None:
    """Queue again every delivery to ENDPOINT_ID that failed since --since."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    ids = _run(
        _audited(
            "relay.endpoint.recover",
            endpoint_id,
            lambda conn: messages.recover(conn, endpoint_id, since),
        )
    )
    click.echo(f"requeued {len(ids)} message(s) for {endpoint_id}")
