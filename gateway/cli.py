"""The ``gateway`` command.

Every ordinary mistake ends in one line on stderr and a non-zero exit: a usage or
configuration error exits 2, anything else 1. ``--debug`` (or ``GATEWAY_DEBUG=1``) shows the
traceback of an error no command handled instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from gateway.auth.cli import keys
from gateway.catalog.cli import catalog
from gateway.cli_settings import database_problem, schema_behind, settings_or_exit
from gateway.emulator_cli import close_period
from gateway.errors import GatewayError
from gateway.integrations.lago.client import LagoError
from gateway.relay.cli import relay
from gateway.usage.cli import outbox
from gateway.users.cli import users
from gateway.webhooks.cli import lago, webhooks

DISTRIBUTION = "billing-gateway"


class GatewayGroup(click.Group):
    """The root group: an error no command handled becomes one line on stderr and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug") or _debug_from_env():
                raise
            migrating = ctx.invoked_subcommand == "migrate"
            raise click.ClickException(one_line(exc, migrating=migrating)) from exc


def _debug_from_env() -> bool:
    return os.environ.get("GATEWAY_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def one_line(exc: Exception, *, migrating: bool = False) -> str:
    """What went wrong, in one line, for an error no command handled."""
    if isinstance(exc, GatewayError):
        if exc.message or not exc.details:
            return _first_line(exc)
        return f"{exc.error}: {json.dumps(exc.details)}"
    if isinstance(exc, SQLAlchemyError):
        return database_problem(exc, migrating=migrating)
    if isinstance(exc, LagoError):
        return f"Lago refused or is unreachable: {_first_line(exc)}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return (
        f"unexpected {type(exc).__name__}: {_first_line(exc)} "
        "(--debug or GATEWAY_DEBUG=1 shows the traceback)"
    )


def ensure_can_listen(host: str, port: int) -> None:
    """Bind HOST:PORT as uvicorn will (SO_REUSEADDR), and let go; exit 1 when it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}") from exc


@click.group(cls=GatewayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION, prog_name="gateway")
@click.option(
    "--debug", is_flag=True, help="Show the traceback of an unexpected error (GATEWAY_DEBUG=1)."
)
def main(debug: bool) -> None:
    """Usage-billing gateway in front of Lago and Stripe."""


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    from alembic.util import CommandError

    from gateway.migrations.runner import upgrade

    try:
        upgrade(settings_or_exit().database_url)
    except CommandError as exc:
        raise click.ClickException(f"cannot migrate: {_first_line(exc)}") from exc
    click.echo("database is up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="API processes."
)
@click.option(
    "--no-worker", is_flag=True, help="Serve the API only; run `gateway worker` elsewhere."
)
def serve(host: str, port: int, workers: int, no_worker: bool) -> None:
    """Run the API and, unless --no-worker, the background workers in the same process."""
    import uvicorn

    from gateway.http.serving import CoalescingHttpToolsProtocol
    from gateway.logging import configure_logging
    from gateway.migrations.runner import ensure_current

    settings = settings_or_exit()
    if workers > 1 and settings.uses_emulator:
        click.echo(
            "configuration error: GATEWAY_LAGO_API_URL: --workers above 1 needs a real Lago "
            "(each process would get its own in-memory emulator)",
            err=True,
        )
        sys.exit(2)
    ensure_can_listen(host, port)  # before migrations, workers or the emulator start
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
        app.state.public_url = f"http://{_reachable(host)}:{port}"
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return
    if no_worker:
        os.environ["GATEWAY_NO_WORKER"] = "1"
    uvicorn.run("gateway.app:create_app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]


def _reachable(host: str) -> str:
    """The address to reach a server bound to ``host`` from this machine."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - not a bind: where to reach one
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@main.command()
def worker() -> None:
    """Run the background workers only (scale-out next to `serve --no-worker`)."""
    from gateway.app import tune_gc
    from gateway.logging import configure_logging
    from gateway.migrations.runner import current_and_head
    from gateway.parts import build_parts
    from gateway.worker import run_all

    settings = settings_or_exit()
    if settings.uses_emulator:
        click.echo(
            "configuration error: GATEWAY_LAGO_API_URL: `gateway worker` needs a real Lago "
            "(the bundled emulator lives inside `gateway serve`)",
            err=True,
        )
        sys.exit(2)
    current, head = current_and_head(settings.database_url)
    if current != head:
        raise click.ClickException(schema_behind(current, head))
    configure_logging(settings.log_level, json=settings.log_json)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with build_parts(settings) as parts:
            tune_gc()
            await run_all(parts, stop)

    asyncio.run(go())


main.add_command(keys)
main.add_command(outbox)
main.add_command(relay)
lago.add_command(close_period)
main.add_command(lago)
main.add_command(webhooks)
main.add_command(catalog)
main.add_command(users)
