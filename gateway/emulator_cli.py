"""``gateway lago close-period``: on the embedded default, the bundled emulator's billing run.

The emulator lives inside ``gateway serve``; the command asks the running gateway, through
the emulator's control route mounted at ``/lago/_emulator/close_period``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click
import httpx

from gateway.cli_settings import settings_or_exit
from gateway.config import EMBEDDED_GATEWAY_URL

GATEWAY_URL_OPTION = click.option(
    "--gateway-url",
    default=EMBEDDED_GATEWAY_URL,
    show_default=True,
    help="The running `gateway serve` (embedded default) whose emulator to use.",
)


def emulator_client(gateway_url: str) -> httpx.AsyncClient:
    """The HTTP client for the mounted emulator's control routes (a seam for tests)."""
    return httpx.AsyncClient(base_url=f"{gateway_url.rstrip('/')}/lago", timeout=30.0)


async def _close(gateway_url: str, customer: str | None) -> dict[str, Any]:
    body = {"external_customer_id": customer} if customer else {}
    async with emulator_client(gateway_url) as client:
        try:
            answer = await client.post("/_emulator/close_period", json=body)
        except httpx.HTTPError as exc:
            raise click.ClickException(
                f"cannot reach the gateway at {gateway_url} ({type(exc).__name__}): "
                "is `gateway serve` running on the embedded default?"
            ) from exc
    if answer.status_code != 200:
        raise click.ClickException(f"the emulator answered {answer.status_code}: {answer.text}")
    found: dict[str, Any] = answer.json()
    return found


@click.command("close-period")
@click.option("--customer", default=None, help="Only this customer's subscriptions.")
@GATEWAY_URL_OPTION
def close_period(customer: str | None, gateway_url: str) -> None:
    """Embedded default: close the billing period now (invoices, webhooks, next period)."""
    settings = settings_or_exit()
    if not settings.uses_emulator:
        click.echo(
            "configuration error: GATEWAY_LAGO_API_URL is set: a real Lago closes periods on "
            "its own clock (close-period drives the bundled emulator only)",
            err=True,
        )
        sys.exit(2)
    answer = asyncio.run(_close(gateway_url, customer))
    invoices = answer["invoices"]
    for invoice in invoices:
        click.echo(
            f"{invoice['number']}\t{invoice['lago_id']}\t{invoice['customer']['external_id']}\t"
            f"{invoice['status']}\t{invoice['total_amount_cents']} {invoice['currency']}"
        )
    click.echo(f"{len(invoices)} invoice(s) issued at {answer['now']}; the next period has begun")
