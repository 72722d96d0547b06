"""Settings and the database for CLI commands: each failure is one line on stderr.

A configuration error exits 2; a database that cannot be reached, or is not migrated, exits 1.
"""

from __future__ import annotations

import sys

import click
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from gateway.config import Settings, SettingsError, load_settings
from gateway.db import sync_url


def settings_or_exit() -> Settings:
    """The settings from the environment; on a configuration error, say so and exit 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)


def database_url_or_exit() -> str:
    """``GATEWAY_DATABASE_URL`` once a connection to it opens; else one line and exit 1."""
    url = settings_or_exit().database_url
    # Opened without asyncio first: a failed aiosqlite connect leaves its thread calling
    # into the closed event loop, which prints a traceback after the message.
    engine = create_engine(sync_url(url))
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        raise click.ClickException(unreachable(url, exc)) from exc
    finally:
        engine.dispose()
    return url


def database_problem(exc: SQLAlchemyError, *, migrating: bool = False) -> str:
    """Unreachable, not migrated, or another database error: which, in one line."""
    from gateway.migrations.runner import current_and_head

    url = settings_or_exit().database_url
    try:
        current, head = current_and_head(url)
    except SQLAlchemyError as again:
        return unreachable(url, again)
    if current != head and not migrating:
        return schema_behind(current, head)
    return f"database error on {_shown(url)}: {_cause(exc)}"


def unreachable(url: str, exc: SQLAlchemyError) -> str:
    return f"cannot reach the database {_shown(url)}: {_cause(exc)}"


def schema_behind(current: str | None, head: str | None) -> str:
    return (
        f"GATEWAY_DATABASE_URL: schema is at {current or 'nothing'}, code needs {head}: "
        "run `gateway migrate`"
    )


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _cause(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig if isinstance(orig, BaseException) else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
