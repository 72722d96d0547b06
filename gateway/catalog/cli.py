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
from gateway.config import Settings
from gateway.db import Database
from gateway.integrations.lago.client import LagoClient, LagoError

NEEDS_LAGO = (
    "configuration error: GATEWAY_LAGO_API_URL: `gateway catalog` needs a real Lago "
    "(the embedded emulator lives inside `gateway serve`, which applies the catalog "
    "to it when it starts)"
)


def _settings() -> Settings:
    settings = settings_or_exit()
    if settings.uses_emulator:
        click.echo(NEEDS_LAGO, err=True)
        sys.exit(2)
    return settings


def lago_client(settings: Settings) -> LagoClient:
    """The Lago client the commands use (tests replace it to reach an emulator)."""
    return LagoClient(
        settings.lago_api_url, settings.lago_key, timeout=settings.lago_timeout_seconds
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
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def apply(dry_run: bool, file: str | None) -> None:
    """Make Lago match FILE (default: GATEWAY_CATALOG_PATH, lago/catalog.yaml): idempotent."""
    settings = _settings()
    loaded, source = _load(file, settings)
    if not dry_run:
        from gateway.migrations.runner import ensure_current

        ensure_current(settings)
    click.echo(f"{source} → Lago at {settings.lago_api_url}")
    sys.exit(asyncio.run(_apply(settings, loaded, dry_run)))


async def _apply(settings: Settings, loaded: Catalog, dry_run: bool) -> int:
    lago = lago_client(settings)
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
        click.echo(f"error: cannot read Lago's catalog: {_reason(exc)}", err=True)
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
def export(output: str | None, base: str | None, lago_only: bool) -> None:
    """Write Lago's current catalog in the catalog file's format."""
    settings = _settings()
    base_catalog = None
    if not lago_only:
        path = base or configured_catalog_path(settings)
        base_catalog = _load(str(path), settings)[0] if path else None
    text = asyncio.run(_export(settings, base_catalog))
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


async def _export(settings: Settings, base: Catalog | None) -> str:
    lago = lago_client(settings)
    try:
        data = catalog_from_lago(await fetch_lago_catalog(lago), base)
    except (LagoError, ExportError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        await lago.aclose()
    return render(data, f"Lago at {settings.lago_api_url}")
