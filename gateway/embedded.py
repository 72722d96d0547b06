"""The embedded default's Lago: the bundled emulator, mounted at ``/lago``, its state kept in
a file beside the SQLite database, its webhooks posted to the gateway's own Lago door.

Nothing here runs with a real Lago (``GATEWAY_LAGO_API_URL`` set).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from gateway.config import Settings
from gateway.integrations.lago.client import LagoClient
from gateway.logging import get_logger
from gateway.webhooks.registration import register_lago_endpoint

log = get_logger(__name__)
STATE_FILE_NAME = "lago-emulator.json"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
# The gateway's Lago door as the emulator posts to it (in process: the host is not looked up).
WEBHOOK_URL = "http://gateway.embedded/gateway/webhooks/lago"
DELIVERY_SECONDS = 0.25
WRITE_SHARE = 10


def state_file(settings: Settings) -> Path | None:
    """``lago-emulator.json`` beside the SQLite file; ``None`` for an in-memory database."""
    path = settings.database_url.split("///", 1)[1] if "///" in settings.database_url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).resolve().parent / STATE_FILE_NAME


def build(settings: Settings, public_url: str | None) -> Any:
    """The emulator app: its state loaded from the state file (when there is one), its
    ``api_url`` (webhook issuer, file URLs) the gateway's ``/lago`` path."""
    from lago.emulator import EmulatorState, create_app
    from lago.emulator.autosave import Autosave
    from lago.emulator.persistence import load

    state = EmulatorState()
    path = state_file(settings)
    if path is not None and load(state, path):
        log.info("app.lago.emulator_state_loaded", invoices=len(state.invoices))
    state.api_url = f"{(public_url or DEFAULT_PUBLIC_URL).rstrip('/')}/lago"
    app = create_app(state, api_key=settings.lago_key)
    return Autosave(app, state, path) if path is not None else app


@asynccontextmanager
async def running(emulator: Any) -> AsyncIterator[None]:
    """Write the emulator's state on a short debounce while the block runs, and at its end."""
    if not hasattr(emulator, "flush"):
        yield
        return
    task = asyncio.create_task(_autosave(emulator))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        _flush(emulator)


async def _autosave(emulator: Any) -> None:
    """Every ``interval`` seconds; a big state (a load test's events) waits ten times its
    last write, so that writing never takes more than a tenth of the process's time."""
    wait = emulator.interval
    while True:
        await asyncio.sleep(wait)
        started = time.monotonic()
        _flush(emulator)
        wait = max(emulator.interval, WRITE_SHARE * (time.monotonic() - started))


def _flush(emulator: Any) -> None:
    try:
        emulator.flush()
    except Exception as exc:  # kept as changed: the next tick tries again
        log.error("app.lago.emulator_state_not_saved", error=type(exc).__name__)


@asynccontextmanager
async def delivering(gateway: Any, emulator: Any, lago: LagoClient) -> AsyncIterator[None]:
    """Register the gateway's Lago door with the emulator (JWT-signed, as the gateway checks
    Lago's) and post the emulator's queued webhooks to it while the block runs."""
    await register_lago_endpoint(lago, WEBHOOK_URL, algorithm="jwt", name="billing-gateway")
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway), base_url="http://gateway.embedded"
    )
    task = asyncio.create_task(_deliver(emulator, client))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await _deliver_once(emulator, client)
        await client.aclose()


async def _deliver(emulator: Any, client: httpx.AsyncClient) -> None:
    while True:
        await asyncio.sleep(DELIVERY_SECONDS)
        try:
            await _deliver_once(emulator, client)
        except Exception as exc:
            log.warning("app.lago.emulator_delivery_failed", error=type(exc).__name__)


async def _deliver_once(emulator: Any, client: httpx.AsyncClient) -> None:
    state = emulator.state.lago
    if state.webhooks_pending:
        handled = await state.deliver_webhooks(client)
        touch = getattr(emulator, "touch", None)
        if touch is not None:
            touch()
        log.info("app.lago.emulator_webhooks_delivered", count=len(handled))
