"""Background workers: every capability's job, run until asked to stop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from gateway.collection import collector, reconciler
from gateway.jobs import log_failure
from gateway.logging import get_logger
from gateway.packs import reconciler as packs_reconciler
from gateway.relay import retention as relay_retention
from gateway.relay import sender as relay_sender
from gateway.runtime import Runtime
from gateway.usage import forwarder, retention
from gateway.webhooks import processor as webhooks_processor
from gateway.webhooks import retention as webhooks_retention

log = get_logger(__name__)

Job = Callable[[Runtime, asyncio.Event], Awaitable[None]]

JOBS: list[tuple[str, Job]] = [
    ("usage.forwarder", forwarder.run),
    ("usage.retention", retention.run),
    ("webhooks.processor", webhooks_processor.run),
    ("webhooks.retention", webhooks_retention.run),
    ("relay.sender", relay_sender.run),
    ("relay.retention", relay_retention.run),
    ("collection.collector", collector.run),
    ("collection.reconciler", reconciler.run),
    ("packs.reconciler", packs_reconciler.run),
]

NO_WORKER_ENV = "GATEWAY_NO_WORKER"


def workers_enabled() -> bool:
    return os.environ.get(NO_WORKER_ENV, "") not in ("1", "true")


async def _supervise(name: str, job: Job, runtime: Runtime, stop: asyncio.Event) -> None:
    """Run one job; if it crashes, log and restart it after a pause (nothing is lost: state is in the DB)."""
    while not stop.is_set():
        try:
            await job(runtime, stop)
        except Exception as exc:
            log_failure(log, "worker.job.crashed", exc, job=name)
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                continue


async def run_all(runtime: Runtime, stop: asyncio.Event) -> None:
    """Run every job until ``stop`` is set."""
    log.info("worker.started", jobs=[name for name, _ in JOBS])
    await asyncio.gather(*(_supervise(name, job, runtime, stop) for name, job in JOBS))
    log.info("worker.stopped")
