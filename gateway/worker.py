"""Background workers: every capability's job, run until asked to stop, and the table of
webhook handlers the webhook processor runs (the one place a capability's handler is wired:
``gateway.webhooks`` knows no capability, the capabilities know no processor)."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable

from gateway.collection import collector, reconciler
from gateway.collection import handlers as collection
from gateway.holds.service import Holds, run_expiry
from gateway.jobs import log_failure
from gateway.logging import get_logger
from gateway.meters import alerts
from gateway.meters import handlers as meters_handlers
from gateway.meters import reconciler as meters_reconciler
from gateway.packs import account
from gateway.packs import grants as packs_grants
from gateway.packs import handlers as packs
from gateway.packs import reconciler as packs_reconciler
from gateway.parts import Parts
from gateway.relay import retention as relay_retention
from gateway.relay import sender as relay_sender
from gateway.runtime import Runtime
from gateway.usage import forwarder, retention
from gateway.webhooks import processor as webhooks_processor
from gateway.webhooks import retention as webhooks_retention
from gateway.webhooks.handlers import HandlerTable, Route

log = get_logger(__name__)

Job = Callable[[Parts, asyncio.Event], Awaitable[None]]

# (source, event type pattern, handler): every handler the gateway runs on inbound webhooks.
WEBHOOK_HANDLERS = HandlerTable(
    [
        Route("lago", "invoice.created", collection.on_invoice_issued),
        Route("lago", "invoice.paid_credit_added", collection.on_invoice_issued),
        Route("lago", "invoice.one_off_created", collection.on_invoice_issued),
        Route("lago", "invoice.voided", collection.on_invoice_settled),
        Route("lago", "invoice.payment_status_updated", collection.on_invoice_settled),
        Route("lago", "credit_note.created", collection.on_credit_note),
        Route("lago", "credit_note.created", packs.on_credit_note),
        Route("stripe", "payment_intent.*", collection.on_payment_intent),
        Route("stripe", "checkout.session.*", collection.on_checkout_session),
        Route("stripe", "setup_intent.succeeded", collection.on_setup_intent),
        Route("stripe", "charge.refunded", collection.on_charge_refunded),
        Route("stripe", "charge.refund.updated", collection.on_refund),
        Route("stripe", "refund.*", collection.on_refund),
        Route("stripe", "charge.dispute.*", collection.on_dispute),
        Route("lago", "wallet_transaction.updated", packs.on_wallet_transaction),
        Route("lago", "invoice.payment_status_updated", packs.on_credit_invoice),
        Route("lago", "wallet.*", packs.on_wallet_change),
        Route("lago", "subscription.*", meters_handlers.on_subscription),
        Route("lago", "wallet_transaction.*", packs.on_wallet_change),
    ]
)


def _runtime_only(job: Callable[[Runtime, asyncio.Event], Awaitable[None]]) -> Job:
    """A job that uses the infrastructure only."""

    @functools.wraps(job)
    async def run(parts: Parts, stop: asyncio.Event) -> None:
        await job(parts.runtime, stop)

    return run


async def forward_usage(parts: Parts, stop: asyncio.Event) -> None:
    """The forwarder, rechecking doubtful events with the process's Lago lookups."""
    await forwarder.run(parts.runtime, parts.lookups, stop)


async def process_webhooks(parts: Parts, stop: asyncio.Event) -> None:
    """The webhook processor, running ``WEBHOOK_HANDLERS``."""
    await webhooks_processor.run(parts.runtime, stop, WEBHOOK_HANDLERS)


async def expire_holds(parts: Parts, stop: asyncio.Event) -> None:
    """Holds not captured by their ``expires_at`` are released (``expired``)."""
    runtime = parts.runtime
    holds = Holds(runtime.database, runtime.lago, parts.meters, parts.lookups, parts.catalog)
    await run_expiry(holds, stop)


async def watch_alerts(parts: Parts, stop: asyncio.Event) -> None:
    """Usage and token alerts, within a pass (0.5 s) of the event that reached them."""
    watch = alerts.AlertWatch(parts.runtime.database, lambda: parts.catalog)
    await alerts.run(watch, stop)


async def sync_grants(parts: Parts, stop: asyncio.Event) -> None:
    """Subscribers' token wallets carry their plan's recurring token grant (catalog as loaded)."""
    await packs_grants.run(parts.runtime, lambda: parts.catalog, stop)


async def reconcile_meters(parts: Parts, stop: asyncio.Event) -> None:
    """Meters agree with Lago's current usage; token accounts read stale wallets again."""
    runtime = parts.runtime
    settings = runtime.settings

    async def refresh_stale() -> None:
        await account.refresh_stale_accounts(
            runtime.database, runtime.lago, parts.catalog, settings.meters_wallet_refresh_seconds
        )

    reconciler = meters_reconciler.Reconciler(parts.meters, runtime.lago)
    await meters_reconciler.run(reconciler, refresh_stale, settings.meters_reconcile_seconds, stop)


# Each job is handed what it uses: the infrastructure, and a capability's state where it needs one.
JOBS: list[tuple[str, Job]] = [
    ("usage.forwarder", forward_usage),
    ("usage.retention", _runtime_only(retention.run)),
    ("webhooks.processor", process_webhooks),
    ("webhooks.retention", _runtime_only(webhooks_retention.run)),
    ("relay.sender", _runtime_only(relay_sender.run)),
    ("relay.retention", _runtime_only(relay_retention.run)),
    ("collection.collector", _runtime_only(collector.run)),
    ("collection.reconciler", _runtime_only(reconciler.run)),
    ("packs.reconciler", _runtime_only(packs_reconciler.run)),
    ("packs.grants", sync_grants),
    ("holds.expiry", expire_holds),
    ("meters.reconciler", reconcile_meters),
    ("meters.alerts", watch_alerts),
]

NO_WORKER_ENV = "GATEWAY_NO_WORKER"


def job_function(name: str) -> Callable[..., Awaitable[None]]:
    """The capability's function behind the job ``name`` (unwrapped from its adapter)."""
    job = dict(JOBS)[name]
    found: Callable[..., Awaitable[None]] = getattr(job, "__wrapped__", job)
    return found


def workers_enabled() -> bool:
    return os.environ.get(NO_WORKER_ENV, "") not in ("1", "true")


async def _supervise(name: str, job: Job, parts: Parts, stop: asyncio.Event) -> None:
    """Run one job; if it crashes, log and restart it after a pause (its state is in the DB)."""
    while not stop.is_set():
        try:
            await job(parts, stop)
        except Exception as exc:
            log_failure(log, "worker.job.crashed", exc, job=name)
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                continue


async def run_all(parts: Parts, stop: asyncio.Event) -> None:
    """Run every job until ``stop`` is set."""
    log.info("worker.started", jobs=[name for name, _ in JOBS])
    await asyncio.gather(*(_supervise(name, job, parts, stop) for name, job in JOBS))
    log.info("worker.stopped")
