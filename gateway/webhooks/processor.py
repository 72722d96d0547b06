"""The processor: runs the gateway's own handlers of stored webhooks, each on its own.

Relaying does not happen here: a webhook's relay message is written when it is stored
(``inbox``), so subscribers get it whatever its handlers do. This job claims webhooks whose
handlers still have to run, leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: several
processes share the inbox; a SIGKILL only delays a row until its lease ends), and starts one
task per webhook. A slow handler holds only its own webhook: the loop keeps claiming while
up to ``HANDLER_CONCURRENCY`` run, and settles what finished in group commits.

The handlers are the processor's table (``handlers.HandlerTable``, the gateway's is
``gateway.worker.WEBHOOK_HANDLERS``). Per webhook, every matching handler runs
(concurrently, each under ``HANDLER_TIMEOUT_SECONDS``); the ones that succeed are
remembered (``handlers_done``) so a retry runs only the others.
A transient failure (``failures.is_transient``) retries with exponential backoff up to
``MAX_ATTEMPTS``; a permanent one, or the last attempt, makes the row ``dead`` with its
reason, until a replay (API or CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.audit.service import entry, record_many
from gateway.jobs import idle
from gateway.logging import get_logger
from gateway.relay.service import DUE, enqueue_many
from gateway.runtime import Runtime
from gateway.webhooks import handlers, metrics, store
from gateway.webhooks.failures import Failure, describe, failure
from gateway.webhooks.inbox import ARRIVED, relay_message
from gateway.webhooks.models import DEAD, HANDLED, RECEIVED
from gateway.webhooks.store import Claimed, Settlement

log = get_logger(__name__)
ACTOR = f"worker:{socket.gethostname()}:{os.getpid()}"
BATCH_SIZE = 100
HANDLER_TIMEOUT_SECONDS = 60.0
# Longer than a handler may take: a lease ends only when its process is gone.
LEASE_SECONDS = 2 * HANDLER_TIMEOUT_SECONDS
HANDLER_CONCURRENCY = 64
MAX_ATTEMPTS = 20
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 3600.0
IDLE_POLL_SECONDS = 0.5
GAUGE_SECONDS = 5.0
STOP_GRACE_SECONDS = 5.0


def backoff_seconds(attempts: int) -> float:
    """Exponential from 2 s, capped at an hour, with ±20 % jitter."""
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** min(attempts - 1, 30))
    return delay * (0.8 + 0.4 * random.random())


def handler_name(handler: handlers.Handler) -> str:
    """A handler's stable name (``module.function``), as kept in ``handlers_done``."""
    return f"{handler.__module__}.{getattr(handler, '__qualname__', repr(handler))}"


@dataclass(frozen=True)
class Finished:
    """One webhook's handlers have run: which succeeded (ever) and what failed this time."""

    row: Claimed
    done: frozenset[str]
    failures: tuple[Failure, ...]


class Processor:
    def __init__(
        self,
        runtime: Runtime,
        table: handlers.HandlerTable,
        *,
        batch_size: int = BATCH_SIZE,
        concurrency: int = HANDLER_CONCURRENCY,
        handler_timeout: float = HANDLER_TIMEOUT_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.table = table
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.handler_timeout = handler_timeout
        self._running: set[asyncio.Task[None]] = set()
        self._finished: list[Finished] = []
        self._relayed_legacy = False

    async def run(self, stop: asyncio.Event) -> None:
        gauges = asyncio.create_task(self._gauges(stop))
        try:
            await self._loop(stop)
        finally:
            gauges.cancel()
            await self._stop_running()

    async def _loop(self, stop: asyncio.Event) -> None:
        wake = self.runtime.database.wake(ARRIVED)
        while not stop.is_set():
            # Cleared before looking: a handler finishing (or a webhook arriving) while this
            # pass runs keeps it set, and the wait below returns at once.
            wake.take()
            if await self.step():
                continue
            await idle(stop, wake, IDLE_POLL_SECONDS)

    async def step(self, now: float | None = None) -> int:
        """Settle what finished, then claim what is due while handler slots are free;
        returns how many rows were settled or claimed (0: nothing to do now)."""
        if not self._relayed_legacy:
            await self._relay_legacy()
        settled = await self._settle_finished()
        free = self.concurrency - len(self._running)
        if free <= 0:
            return settled
        claimed = await store.claim_due(
            self.runtime.database, min(self.batch_size, free), LEASE_SECONDS, now=now
        )
        nothing_to_run = []
        for row in claimed:
            matched = [
                handler
                for handler in self.table.matching(row.source, row.event_type)
                if handler_name(handler) not in row.handlers_done
            ]
            if matched:
                self._start(row, matched)
            else:
                nothing_to_run.append(Finished(row, row.handlers_done, ()))
        if nothing_to_run:
            await self._settle(nothing_to_run)
        return settled + len(claimed)

    async def process_due(self, now: float | None = None) -> int:
        """Claim one batch, wait for its handlers and settle it; returns how many were claimed
        (for tests and one-shot runs)."""
        claimed = await self.step(now)
        await self.drain()
        return claimed

    async def drain(self) -> None:
        """Wait for every running handler, then settle."""
        while self._running:
            await asyncio.wait(set(self._running))
        await self._settle_finished()

    def _start(self, row: Claimed, matched: list[handlers.Handler]) -> None:
        task = asyncio.create_task(self._run_handlers(row, matched))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run_handlers(self, row: Claimed, matched: list[handlers.Handler]) -> None:
        done = set(row.handlers_done)
        failures: list[Failure] = []
        try:
            payload = orjson.loads(row.body)
            inbound = row.as_model()
            results = await asyncio.gather(
                *(
                    asyncio.wait_for(handler(self.runtime, inbound, payload), self.handler_timeout)
                    for handler in matched
                ),
                return_exceptions=True,
            )
            for handler, result in zip(matched, results, strict=True):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException):
                    failures.append(failure(handler_name(handler), result))
                else:
                    done.add(handler_name(handler))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the body is not JSON: nothing can handle it
            failures.append(Failure("payload", False, describe(exc)))
        self._finished.append(Finished(row, frozenset(done), tuple(failures)))
        self.runtime.database.wake(ARRIVED).set()

    async def _settle_finished(self) -> int:
        finished, self._finished = self._finished, []
        if finished:
            await self._settle(finished)
        return len(finished)

    async def _settle(self, finished: list[Finished]) -> None:
        try:
            await self._commit(finished)
        except Exception as exc:
            if len(finished) == 1:
                # Its lease ends and it is claimed again: the handlers that succeeded are
                # idempotent, and the row is not lost.
                log.error("webhooks.inbound.settle_failed", error=type(exc).__name__)
                return
            log.warning("webhooks.inbound.batch_failed", error=type(exc).__name__, n=len(finished))
            for one in finished:
                await self._settle([one])

    async def _commit(self, finished: list[Finished]) -> None:
        now = time.time()
        settlements = [self._settlement(one, now) for one in finished]
        async with self.runtime.database.engine.begin() as conn:
            await store.settle(conn, settlements, now)
            await record_many(conn, [self._audit(finished, settlements)])
        for one, settlement in zip(finished, settlements, strict=True):
            self._count(one, settlement, now)

    @staticmethod
    def _settlement(one: Finished, now: float) -> Settlement:
        row = one.row
        if not one.failures:
            return Settlement(row.id, HANDLED, one.done)
        reason = "; ".join(f"{f.handler}: {f.reason}" for f in one.failures)[:2000]
        if any(not f.transient for f in one.failures):
            return Settlement(row.id, DEAD, one.done, reason)
        if row.attempts >= MAX_ATTEMPTS:
            return Settlement(
                row.id, DEAD, one.done, f"gave up after {row.attempts} attempts: {reason}"
            )
        return Settlement(row.id, RECEIVED, one.done, reason, now + backoff_seconds(row.attempts))

    @staticmethod
    def _count(one: Finished, settlement: Settlement, now: float) -> None:
        source = one.row.source
        for f in one.failures:
            metrics.HANDLE_FAILURES.labels(
                source=source, kind="transient" if f.transient else "permanent"
            ).inc()
        if settlement.status == HANDLED:
            metrics.HANDLED.labels(source=source).inc()
            metrics.HANDLING_LAG.labels(source=source).observe(max(0.0, now - one.row.received_at))
        elif settlement.status == DEAD:
            metrics.DEAD.labels(source=source).inc()
            log.warning(
                "webhooks.inbound.dead",
                source=source,
                provider_event_id=one.row.provider_event_id,
                event_type=one.row.event_type,
                attempts=one.row.attempts,
                reason=settlement.error,
            )
        else:
            log.info(
                "webhooks.inbound.retry",
                source=source,
                provider_event_id=one.row.provider_event_id,
                attempts=one.row.attempts,
                reason=settlement.error,
            )

    @staticmethod
    def _audit(finished: list[Finished], settlements: list[Settlement]) -> dict[str, Any]:
        by_status = {HANDLED: 0, RECEIVED: 0, DEAD: 0}
        for settlement in settlements:
            by_status[settlement.status] += 1
        return entry(
            actor=ACTOR,
            action="webhooks.inbound.handled",
            outcome="handled" if by_status[HANDLED] == len(settlements) else "partial",
            target_ids=[one.row.provider_event_id for one in finished],
            detail={
                "handled": by_status[HANDLED],
                "retry": by_status[RECEIVED],
                "dead": by_status[DEAD],
            },
        )

    async def _relay_legacy(self) -> None:
        """Relay the rows stored before webhooks were relayed on receipt (once per start)."""
        database = self.runtime.database
        while rows := await store.unrelayed(database, self.batch_size):
            now = time.time()
            async with database.engine.begin() as conn:
                messages = [
                    relay_message(
                        r.source, r.provider_event_id, r.event_type, r.received_at, r.body
                    )
                    for r in rows
                ]
                _, deliveries = await enqueue_many(conn, messages)
                await store.mark_relayed(conn, [r.id for r in rows], now)
            database.wake(DUE).set(deliveries)
            log.info("webhooks.inbound.relayed_backlog", n=len(rows))
        self._relayed_legacy = True

    async def _stop_running(self) -> None:
        """On stop: let running handlers finish briefly, settle them, cancel the rest (their
        leases end and another process runs them)."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=STOP_GRACE_SECONDS)
        for task in list(self._running):
            task.cancel()
        with contextlib.suppress(Exception):
            await self._settle_finished()

    async def _gauges(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                status = await store.status(self.runtime.database)
            except Exception as exc:
                log.warning("webhooks.inbound.gauges_failed", error=type(exc).__name__)
            else:
                metrics.PENDING.set(status.received)
                metrics.OLDEST_PENDING_AGE.set(status.oldest_received_age_seconds or 0.0)
                metrics.DEAD_STORED.set(status.dead)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=GAUGE_SECONDS)


async def run(runtime: Runtime, stop: asyncio.Event, table: handlers.HandlerTable) -> None:
    """Worker job entry point: run the handlers of ``table``."""
    await Processor(runtime, table).run(stop)
