"""Settings for CLI commands: a configuration error is one line on stderr and exit status 2."""

from __future__ import annotations

import sys

import click

from gateway.config import Settings, SettingsError, load_settings


def settings_or_exit() -> Settings:
    """The settings from the environment; on a configuration error, say so and exit 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
