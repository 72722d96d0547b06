"""The processor: turns each stored webhook into one relay message, after its handlers ran.

Rows are leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so several processes share the
inbox and a SIGKILL only delays a row until its lease ends. The relay message id is derived
from (source, provider id), and enqueueing it and marking the row handled share one
transaction: a webhook handled twice still yields exactly one relay message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.audit.service import entry, record_many
from gateway.jobs import idle
from gateway.logging import get_logger
from gateway.relay.service import enqueue_message
from gateway.runtime import Runtime
from gateway.webhooks import handlers, metrics, store
from gateway.webhooks.service import pieces
from gateway.webhooks.store import Claimed

log = get_logger(__name__)
ACTOR = f"worker:{socket.gethostname()}:{os.getpid()}"
BATCH_SIZE = 100
LEASE_SECONDS = 120.0
HANDLER_TIMEOUT_SECONDS = 60.0
HANDLER_CONCURRENCY = 16
MAX_ATTEMPTS = 20
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 3600.0
IDLE_POLL_SECONDS = 0.5
GAUGE_SECONDS = 5.0


def message_id(source: str, provider_event_id: str) -> str:
    """The relay message id of an inbound webhook: the same on every re-handle."""
    digest = hashlib.sha256(f"{source}\x00{provider_event_id}".encode()).hexdigest()[:32]
    return f"msg_{source}_{digest}"


def backoff_seconds(attempts: int) -> float:
    """Exponential from 2 s, capped at an hour, with ±20 % jitter."""
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** min(attempts - 1, 30))
    return delay * (0.8 + 0.4 * random.random())


@dataclass
class Outcome:
    ready: list[tuple[Claimed, dict[str, Any]]] = field(default_factory=list)
    failed: dict[int, tuple[Claimed, str]] = field(default_factory=dict)


class Processor:
    def __init__(self, runtime: Runtime, *, batch_size: int = BATCH_SIZE) -> None:
        self.runtime = runtime
        self.batch_size = batch_size
        self._limit = asyncio.Semaphore(HANDLER_CONCURRENCY)

    async def run(self, stop: asyncio.Event) -> None:
        # Two loops on PostgreSQL (SKIP LOCKED keeps them apart): one handles while the
        # other waits on the database. SQLite has one writer anyway.
        loops = 1 if self.runtime.database.is_sqlite else 2
        tasks = [asyncio.create_task(self._loop(stop)) for _ in range(loops)]
        tasks.append(asyncio.create_task(self._gauges(stop)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _loop(self, stop: asyncio.Event) -> None:
        wake = pieces(self.runtime).arrived
        while not stop.is_set():
            if await self.process_due():
                continue
            wake.clear()
            await idle(stop, wake, IDLE_POLL_SECONDS)

    async def process_due(self, now: float | None = None) -> int:
        """Claim and handle one batch of due webhooks; returns how many were claimed."""
        claimed = await store.claim_due(
            self.runtime.database, self.batch_size, LEASE_SECONDS, now=now
        )
        if claimed:
            await self.handle(claimed)
        return len(claimed)

    async def handle(self, claimed: list[Claimed]) -> None:
        """Run the handlers of each webhook, then relay and settle the batch in one transaction."""
        outcome = Outcome()
        await asyncio.gather(*(self._dispatch(row, outcome) for row in claimed))
        try:
            await self._commit(outcome)
        except Exception as exc:
            if len(outcome.ready) + len(outcome.failed) <= 1:
                raise
            # One row may be unrelayable: settle the others one by one, the culprit retried.
            log.warning("webhooks.inbound.batch_failed", error=type(exc).__name__, n=len(claimed))
            await self._commit_one_by_one(outcome)

    async def _commit(self, outcome: Outcome) -> None:
        now = time.time()
        async with self.runtime.database.engine.begin() as conn:
            for row, payload in outcome.ready:
                await enqueue_message(
                    conn,
                    message_id=message_id(row.source, row.provider_event_id),
                    type=row.event_type,
                    source=row.source,
                    data=payload,
                    created_at=datetime.fromtimestamp(row.received_at, UTC),
                )
            await store.mark_handled(conn, [row.id for row, _ in outcome.ready], now)
            given_up = await self._settle_failures(conn, outcome, now)
            await record_many(conn, [self._audit(outcome, given_up)])
        for row, _ in outcome.ready:
            metrics.HANDLED.labels(source=row.source).inc()
            metrics.HANDLING_LAG.labels(source=row.source).observe(max(0.0, now - row.received_at))

    async def _commit_one_by_one(self, outcome: Outcome) -> None:
        failed = dict(outcome.failed)
        for row, payload in outcome.ready:
            try:
                await self._commit(Outcome(ready=[(row, payload)]))
            except Exception as exc:
                failed[row.id] = (row, f"{type(exc).__name__}: {str(exc)[:500]}")
                metrics.HANDLE_FAILURES.labels(source=row.source).inc()
        if failed:
            await self._commit(Outcome(failed=failed))

    async def _dispatch(self, row: Claimed, outcome: Outcome) -> None:
        try:
            payload = orjson.loads(row.body)
            matched = handlers.matching(row.source, row.event_type)
            if matched:
                inbound = row.as_model()
                async with self._limit:
                    for handler in matched:
                        await asyncio.wait_for(
                            handler(self.runtime, inbound, payload), HANDLER_TIMEOUT_SECONDS
                        )
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc)[:500]}"
            outcome.failed[row.id] = (row, reason)
            metrics.HANDLE_FAILURES.labels(source=row.source).inc()
            log.warning(
                "webhooks.inbound.handler_failed",
                source=row.source,
                provider_event_id=row.provider_event_id,
                attempts=row.attempts,
                error=type(exc).__name__,
            )
            return
        outcome.ready.append((row, payload))

    async def _settle_failures(self, conn: Any, outcome: Outcome, now: float) -> list[int]:
        given_up = []
        for id_, (row, reason) in outcome.failed.items():
            if row.attempts >= MAX_ATTEMPTS:
                await store.mark_failed(conn, id_, reason)
                given_up.append(id_)
                log.error(
                    "webhooks.inbound.given_up",
                    source=row.source,
                    provider_event_id=row.provider_event_id,
                    attempts=row.attempts,
                )
            else:
                await store.reschedule(conn, id_, now + backoff_seconds(row.attempts), reason)
        return given_up

    @staticmethod
    def _audit(outcome: Outcome, given_up: list[int]) -> dict[str, Any]:
        failed = [row for row, _ in outcome.failed.values()]
        return entry(
            actor=ACTOR,
            action="webhooks.inbound.handled",
            outcome="handled" if not failed else "partial",
            target_ids=[row.provider_event_id for row, _ in outcome.ready],
            detail={
                "handled": len(outcome.ready),
                "retry": len(failed) - len(given_up),
                "failed": len(given_up),
            },
        )

    async def _gauges(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                status = await store.status(self.runtime.database)
            except Exception as exc:
                log.warning("webhooks.inbound.gauges_failed", error=type(exc).__name__)
            else:
                metrics.PENDING.set(status.received)
                metrics.OLDEST_PENDING_AGE.set(status.oldest_received_age_seconds or 0.0)
                metrics.FAILED_STORED.set(status.failed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=GAUGE_SECONDS)


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job entry point."""
    await Processor(runtime).run(stop)
