"""The ``gateway`` command."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import click

from gateway.auth.cli import keys
from gateway.catalog.cli import catalog
from gateway.cli_settings import settings_or_exit
from gateway.relay.cli import relay
from gateway.usage.cli import outbox
from gateway.webhooks.cli import lago, webhooks


@click.group()
def main() -> None:
    """Usage-billing gateway in front of Lago and Stripe."""


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    from gateway.migrations.runner import upgrade

    upgrade(settings_or_exit().database_url)
    click.echo("database is up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="API processes."
)
@click.option(
    "--no-worker", is_flag=True, help="Serve the API only; run `gateway worker` elsewhere."
)
def serve(host: str, port: int, workers: int, no_worker: bool) -> None:
    """Run the API and, unless --no-worker, the background workers in the same process."""
    import uvicorn

    from gateway.logging import configure_logging
    from gateway.migrations.runner import ensure_current
    from gateway.serving import CoalescingHttpToolsProtocol

    settings = settings_or_exit()
    if workers > 1 and settings.uses_emulator:
        click.echo(
            "configuration error: GATEWAY_LAGO_API_URL: --workers above 1 needs a real Lago "
            "(each process would get its own in-memory emulator)",
            err=True,
        )
        sys.exit(2)
    configure_logging(settings.log_level, json=settings.log_json)
    ensure_current(settings)
    options = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": CoalescingHttpToolsProtocol,
        "access_log": False,
        "log_config": None,
    }
    if workers == 1:
        from gateway.app import create_app

        app = create_app(settings, run_workers=not no_worker, server_gc=True)
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return
    if no_worker:
        os.environ["GATEWAY_NO_WORKER"] = "1"
    uvicorn.run("gateway.app:create_app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]


@main.command()
def worker() -> None:
    """Run the background workers only (scale-out next to `serve --no-worker`)."""
    from gateway.app import build_runtime, tune_gc
    from gateway.logging import configure_logging
    from gateway.worker import run_all

    settings = settings_or_exit()
    if settings.uses_emulator:
        click.echo(
            "configuration error: GATEWAY_LAGO_API_URL: `gateway worker` needs a real Lago "
            "(the bundled emulator lives inside `gateway serve`)",
            err=True,
        )
        sys.exit(2)
    configure_logging(settings.log_level, json=settings.log_json)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with build_runtime(settings) as runtime:
            tune_gc()
            await run_all(runtime, stop)

    asyncio.run(go())


main.add_command(keys)
main.add_command(outbox)
main.add_command(relay)
main.add_command(lago)
main.add_command(webhooks)
main.add_command(catalog)
