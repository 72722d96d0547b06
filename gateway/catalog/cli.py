"""``gateway catalog apply [--dry-run] [FILE]`` and ``gateway catalog export [--output FILE]``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from gateway.audit.service import entry, record_many
from gateway.catalog.exporter import ExportError, catalog_from_lago, render
from gateway.catalog.loader import CatalogError, configured_catalog_path, load_catalog
from gateway.catalog.schemas import Catalog
from gateway.catalog.service import Applied, ApplyFailed, apply_catalog, fetch_lago_catalog
from gateway.cli_settings import settings_or_exit
from gateway.config import EMBEDDED_GATEWAY_URL, Settings
from gateway.db import Database
from gateway.integrations.lago.client import LagoClient, LagoError

GATEWAY_URL_OPTION = click.option(
    "--gateway-url",
    default=EMBEDDED_GATEWAY_URL,
    show_default=True,
    help="Embedded default: the running `gateway serve` whose emulator (/lago) to change.",
)


def lago_url(settings: Settings, gateway_url: str) -> str:
    """Lago's URL: GATEWAY_LAGO_API_URL, or on the embedded default the emulator the running
    gateway mounts at ``/lago`` (it lives inside `gateway serve`)."""
    if settings.uses_emulator:
        return f"{gateway_url.rstrip('/')}/lago"
    return settings.lago_api_url


def lago_client(settings: Settings, gateway_url: str = EMBEDDED_GATEWAY_URL) -> LagoClient:
    """The Lago client the commands use (tests replace it to reach an emulator)."""
    return LagoClient(
        lago_url(settings, gateway_url), settings.lago_key, timeout=settings.lago_timeout_seconds
    )


def _load(file: str | None, settings: Settings) -> tuple[Catalog, str]:
    try:
        path = Path(file) if file else configured_catalog_path(settings)
        if path is None:
            raise click.UsageError("no catalog file: give FILE or set GATEWAY_CATALOG_PATH")
        return load_catalog(path), str(path)
    except CatalogError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)


@click.group("catalog")
def catalog() -> None:
    """Billable metrics, plans and coupons as code (lago/catalog.yaml)."""


@catalog.command("apply")
@click.option("--dry-run", is_flag=True, help="Print the diff; change nothing.")
@GATEWAY_URL_OPTION
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def apply(dry_run: bool, gateway_url: str, file: str | None) -> None:
    """Make Lago match FILE (default: GATEWAY_CATALOG_PATH, lago/catalog.yaml): idempotent."""
    settings = settings_or_exit()
    loaded, source = _load(file, settings)
    if not dry_run:
        from gateway.migrations.runner import ensure_current

        ensure_current(settings)
    click.echo(f"{source} → Lago at {lago_url(settings, gateway_url)}")
    sys.exit(asyncio.run(_apply(settings, loaded, dry_run, gateway_url)))


def _client(settings: Settings, gateway_url: str) -> LagoClient:
    return lago_client(settings, gateway_url) if settings.uses_emulator else lago_client(settings)


def _unreachable_hint(settings: Settings, gateway_url: str) -> str:
    if not settings.uses_emulator:
        return ""
    return f" (is `gateway serve` running at {gateway_url}? the emulator lives inside it)"


async def _apply(settings: Settings, loaded: Catalog, dry_run: bool, gateway_url: str) -> int:
    lago = _client(settings, gateway_url)
    database = Database(settings.database_url)

    async def audit(done: Applied) -> None:
        change = done.change
        row = entry(
            actor="cli",
            action=f"catalog.{change.action}",
            outcome="success",
            target=f"{change.kind}:{change.code}",
            upstream="lago",
            status=done.status,
            latency_ms=done.latency_ms,
            detail={"fields": [f.path for f in change.fields]} if change.fields else None,
        )
        async with database.engine.begin() as conn:
            await record_many(conn, [row])

    try:
        await apply_catalog(lago, loaded, dry_run=dry_run, say=click.echo, after_each=audit)
    except ApplyFailed as exc:
        click.echo(f"error: {exc.change.title}: {_reason(exc.cause)}", err=True)
        click.echo(f"{len(exc.applied)} change(s) applied before it; fix and re-run", err=True)
        return 1
    except LagoError as exc:
        hint = _unreachable_hint(settings, gateway_url)
        click.echo(f"error: cannot read Lago's catalog: {_reason(exc)}{hint}", err=True)
        return 1
    finally:
        await lago.aclose()
        await database.dispose()
    return 0


def _reason(exc: LagoError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("error_details"):
        return f"{exc} {body['error_details']}"
    return str(exc)


@catalog.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option(
    "--base",
    type=click.Path(dir_okay=False, exists=True),
    help="Carry gateway-only sections over from this file (default: GATEWAY_CATALOG_PATH).",
)
@click.option("--lago-only", is_flag=True, help="Only what Lago holds: no gateway-only sections.")
@GATEWAY_URL_OPTION
def export(output: str | None, base: str | None, lago_only: bool, gateway_url: str) -> None:
    """Write Lago's current catalog in the catalog file's format."""
    settings = settings_or_exit()
    base_catalog = None
    if not lago_only:
        path = base or configured_catalog_path(settings)
        base_catalog = _load(str(path), settings)[0] if path else None
    text = asyncio.run(_export(settings, base_catalog, gateway_url))
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


async def _export(settings: Settings, base: Catalog | None, gateway_url: str) -> str:
    lago = _client(settings, gateway_url)
    try:
        data = catalog_from_lago(await fetch_lago_catalog(lago), base)
    except (LagoError, ExportError) as exc:
        click.echo(f"error: {exc}{_unreachable_hint(settings, gateway_url)}", err=True)
        sys.exit(1)
    finally:
        await lago.aclose()
    return render(data, f"Lago at {lago_url(settings, gateway_url)}")
