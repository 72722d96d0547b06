"""One gateway process's parts: the runtime (infrastructure only) and each capability's
long-lived state, built once in order and closed in reverse.

Endpoints reach a part through ``gateway.http.dependencies.part("<field>")``; the worker's
jobs are handed the parts they use (``gateway.worker``). No capability imports this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from gateway.auth.service import KeyVerifier
from gateway.catalog.schemas import Catalog
from gateway.catalog.service import load_configured, metric_codes
from gateway.config import Settings
from gateway.db import Database
from gateway.integrations.lago.client import LagoClient
from gateway.integrations.stripe.client import StripeClient
from gateway.logging import get_logger
from gateway.meters.metering import meter_rules
from gateway.meters.reconciler import Reconciler
from gateway.meters.service import Meters
from gateway.runtime import Runtime
from gateway.usage.lookups import LagoLookups
from gateway.usage.outbox import OutboxWriter
from gateway.usage.parsing import metric_rules
from gateway.usage.service import UsageIngest
from gateway.webhooks.service import WebhookIntake

log = get_logger(__name__)
EMULATOR_BASE_URL = "http://lago-emulator"


@dataclass
class Parts:
    runtime: Runtime
    # auth: API keys, verified through a short cache.
    keys: KeyVerifier
    # usage: Lago's subscriptions and metrics, cached (also what subscriptions invalidate).
    lookups: LagoLookups
    # usage: validation and the group-commit outbox writer.
    usage: UsageIngest
    # webhooks: the inbox writer and Lago's public keys.
    webhooks: WebhookIntake
    # meters: what each subscription used this period (rules from the catalog, cached terms).
    meters: Meters
    # The catalog file loaded at start (token packs, allowances, pinned usage codes).
    catalog: Catalog | None = None


def lago_client(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> LagoClient:
    base_url = settings.lago_api_url or EMULATOR_BASE_URL
    return LagoClient(
        base_url, settings.lago_key, timeout=settings.lago_timeout_seconds, transport=transport
    )


def stripe_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None
) -> StripeClient | None:
    key = settings.stripe_secret_key.get_secret_value()
    if not key:
        return None
    return StripeClient(
        key,
        base_url=settings.stripe_api_base,
        timeout=settings.stripe_timeout_seconds,
        transport=transport,
    )


@asynccontextmanager
async def build_runtime(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
    stripe_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Runtime]:
    """The infrastructure of one process, closed in reverse order on exit."""
    database = Database(settings.database_url)
    runtime = Runtime(
        settings=settings,
        database=database,
        lago=lago_client(settings, transport),
        stripe=stripe_client(settings, stripe_transport),
    )
    try:
        yield runtime
    finally:
        await runtime.lago.aclose()
        if runtime.stripe is not None:
            await runtime.stripe.aclose()
        await database.dispose()


@asynccontextmanager
async def build_parts(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
    stripe_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Parts]:
    """Everything long-lived of one process, closed in reverse order on exit."""
    async with build_runtime(settings, transport, stripe_transport) as runtime:
        database, lago = runtime.database, runtime.lago
        lookups = LagoLookups(lago)
        catalog = await load_configured(settings, lago)
        if catalog is not None:
            lookups.allowed_codes = metric_codes(catalog)
            lookups.metric_rules = metric_rules(catalog)
        writer = OutboxWriter(database, writers=settings.outbox_writers)
        meters = Meters(database, lago, meter_rules(catalog) if settings.meters_enabled else {})
        meters.seed = Reconciler(meters, lago).seed
        parts = Parts(
            runtime=runtime,
            keys=KeyVerifier(database, settings.api_key_cache_seconds),
            lookups=lookups,
            usage=UsageIngest(
                writer,
                lookups,
                settings.batch_max_events,
                event_max_bytes=settings.event_max_bytes,
                max_future_seconds=settings.event_max_future_seconds,
                meters=meters,
            ),
            webhooks=WebhookIntake(settings, database, lago),
            meters=meters,
            catalog=catalog,
        )
        await writer.start()
        try:
            yield parts
        finally:
            await writer.stop()
