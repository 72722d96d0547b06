"""The sender: delivers due relay messages to their endpoints, signed per Standard Webhooks.

Deliveries live in the database and are leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL),
so any number of sender processes can drain one database and a SIGKILL loses nothing: a
lease runs out and the delivery is due again. Up to ``relay_concurrency`` attempts are in
flight at once; their outcomes are written in groups (one transaction for everything that
finished while the previous group was committing). A delivery whose success was sent but
not yet recorded when the process died is sent again under the same ``webhook-id``: the
receiver's dedup on that id makes it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
import random
import socket
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import httpx
import psycopg

from gateway.config import Settings
from gateway.db import Database, psycopg_conninfo
from gateway.logging import get_logger
from gateway.relay import metrics, settlement, store
from gateway.relay.destinations import DestinationRefused, Resolver, resolve
from gateway.relay.models import DELIVERED, FAILED, PENDING
from gateway.relay.outbound import Pools, Signer, retry_after_seconds
from gateway.relay.service import DUE, NOTIFY_CHANNEL
from gateway.relay.store import Claimed, Outcome

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = get_logger(__name__)
ACTOR = f"worker:{socket.gethostname()}:{os.getpid()}"
CLAIM_BATCH = 500
IDLE_POLL_SECONDS = 0.5
HOT_POLL_SECONDS = 0.005
HOT_SECONDS = 1.0
BUSY_POLL_SECONDS = 0.005
GAUGE_SECONDS = 5.0
CLAIM_RETRY_SECONDS = 1.0
SENDER_POOL_SIZE = 3
SHUTDOWN_GRACE_SECONDS = 5.0
JITTER = 0.2


class Sender:
    """One process's delivery loop; ``transport`` lets tests put an ASGI receiver underneath,
    ``resolver`` a DNS of their own under the real network."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        actor: str = ACTOR,
        resolver: Resolver = resolve,
    ) -> None:
        self.settings = settings
        self.database = database
        self.actor = actor
        self.concurrency = settings.relay_concurrency
        self.min_claim = max(1, self.concurrency // 4)
        self.schedule = tuple(settings.relay_retry_schedule)
        # A lease must outlive the slowest attempt, or a second sender could start it again.
        self.lease = max(settings.relay_lease_seconds, settings.relay_timeout_seconds * 1.5 + 1.0)
        # Every connection goes to an address checked for it (DNS rebinding): docs/security.md.
        self.pools = Pools(
            self.concurrency,
            settings.relay_timeout_seconds,
            transport,
            allow_private=settings.relay_allow_private,
            resolver=resolver,
        )
        self.signer = Signer()
        self.wake = database.wake(DUE)
        self._inflight: dict[asyncio.Task[None], Claimed] = {}
        self._slot_free = asyncio.Event()
        self._outcomes: list[Outcome] = []
        self._outcomes_ready = asyncio.Event()
        self._hot_until = 0.0
        self._expected = 0
        # Retry times this process scheduled: the loop wakes for them instead of polling late.
        self._retries: list[float] = []
        self._rescheduled = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then finish or hand back what is in flight."""
        settling = asyncio.Event()
        settler = asyncio.create_task(self._settle_loop(settling))
        gauges = asyncio.create_task(self._gauges(stop))
        listener = asyncio.create_task(self._listen(stop))
        try:
            await self._claim_loop(stop)
        finally:
            gauges.cancel()
            listener.cancel()
            await self._drain()
            settling.set()
            self._outcomes_ready.set()
            await settler
            await self.pools.aclose()

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = self.concurrency - len(self._inflight)
            if free < self.min_claim:
                # Busy: claim in groups, not one row (one transaction) per finished attempt.
                self._slot_free.clear()
                await _first(stop.wait(), self._slot_free.wait(), seconds=BUSY_POLL_SECONDS)
                continue
            self._announced(self.wake.take())
            try:
                claimed = await store.claim_due(self.database, min(free, CLAIM_BATCH), self.lease)
            except Exception as exc:  # the database is away: attempts in flight carry on
                log.warning("relay.send.claim_failed", error=type(exc).__name__)
                await _first(stop.wait(), seconds=CLAIM_RETRY_SECONDS)
                continue
            self._expected = max(0, self._expected - len(claimed))
            for item in claimed:
                task = asyncio.create_task(self._deliver(item))
                self._inflight[task] = item
                task.add_done_callback(self._finished)
            if claimed:
                continue
            self._rescheduled.clear()
            await _first(
                stop.wait(),
                self.wake.wait(),
                self._rescheduled.wait(),
                seconds=self._idle_seconds(),
            )

    async def _listen(self, stop: asyncio.Event) -> None:
        """PostgreSQL: deliveries enqueued by other processes wake this sender at their commit
        (``LISTEN``), instead of waiting for the next poll."""
        if not self.database.is_postgres:
            return
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    psycopg_conninfo(self.database.url), autocommit=True
                )
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    async for note in conn.notifies():
                        self.wake.set(int(note.payload) if note.payload.isdigit() else 0)
            except Exception as exc:  # polling still finds everything; listen again soon
                log.warning("relay.send.listen_failed", error=type(exc).__name__)
                await _first(stop.wait(), seconds=CLAIM_RETRY_SECONDS)

    def _announced(self, deliveries: int) -> None:
        """Deliveries announced on the wake-up (by this process or a ``NOTIFY``) and not yet
        claimed: the loop looks again shortly for a while, in case their commit is late."""
        if deliveries:
            self._expected += deliveries
            self._hot_until = time.monotonic() + HOT_SECONDS

    def _idle_seconds(self) -> float:
        # Deliveries announced but not claimed yet are usually waiting for their commit:
        # look again shortly (for a bounded time: another process may have claimed them).
        hot = self._expected > 0 and time.monotonic() < self._hot_until
        seconds = HOT_POLL_SECONDS if hot else IDLE_POLL_SECONDS
        now = time.time()
        while self._retries and self._retries[0] <= now:
            heapq.heappop(self._retries)
        if self._retries:
            seconds = min(seconds, self._retries[0] - now + 0.001)
        return seconds

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._slot_free.set()

    async def _drain(self) -> None:
        """On stop: let attempts in flight finish for a moment, then hand back their leases."""
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=SHUTDOWN_GRACE_SECONDS)
        unfinished = list(self._inflight.items())
        for task, _ in unfinished:
            task.cancel()
        await asyncio.gather(*(task for task, _ in unfinished), return_exceptions=True)
        if unfinished:
            with contextlib.suppress(Exception):
                async with self.database.engine.begin() as conn:
                    await store.release(conn, [claimed for _, claimed in unfinished])

    async def _deliver(self, claimed: Claimed) -> None:
        try:
            outcome = await self.attempt(claimed)
        except Exception as exc:  # a bug must not leave the lease to loop forever unrecorded
            log.exception("relay.send.attempt_crashed", error=type(exc).__name__)
            outcome = self._failure(
                claimed, time.time(), 0.0, error=f"internal: {type(exc).__name__}"
            )
        self._outcomes.append(outcome)
        self._outcomes_ready.set()

    async def attempt(self, claimed: Claimed) -> Outcome:
        """Send one delivery once and judge the answer."""
        now = time.time()
        target = claimed.target
        if target is None or not target.enabled:
            return Outcome(
                claimed, FAILED, now, now, error="endpoint disabled or deleted", attempted=False
            )
        timestamp = int(now)
        headers = {
            "webhook-id": claimed.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signer.sign(
                target.signing_secrets(now), claimed.message_id, timestamp, claimed.body
            ),
        }
        started = time.perf_counter()
        try:
            status, answer_headers, kept = await self.pools.post(
                target.url, claimed.body.encode(), headers
            )
        except (httpx.TimeoutException, TimeoutError):
            return self._failure(claimed, now, time.perf_counter() - started, error="timeout")
        except DestinationRefused as exc:  # found when connecting: a non-public address
            return self._failure(claimed, now, 0.0, error=f"refused: {exc}")
        except Exception as exc:  # any transport failure is the subscriber's failed attempt
            error = f"{type(exc).__name__}: {exc}"[:500]
            return self._failure(claimed, now, time.perf_counter() - started, error=error)
        latency = time.perf_counter() - started
        metrics.ATTEMPT_LATENCY.observe(latency)
        if 200 <= status < 300:
            metrics.DELIVERIES.labels(outcome="delivered").inc()
            metrics.RECEIPT_TO_DELIVERY.observe(max(0.0, time.time() - claimed.created_at))
            return Outcome(
                claimed,
                DELIVERED,
                now,
                now,
                http_status=status,
                latency_ms=latency * 1000,
                response_body=kept,
            )
        retry_after = None
        if status in (429, 503):
            retry_after = retry_after_seconds(answer_headers.get("retry-after"), now)
        return self._failure(
            claimed,
            now,
            latency,
            status=status,
            body=kept,
            error=f"HTTP {status}",
            retry_after=retry_after,
            disable="endpoint answered 410 Gone" if status == 410 else None,
        )

    def _failure(
        self,
        claimed: Claimed,
        now: float,
        latency: float,
        *,
        error: str,
        status: int | None = None,
        body: str | None = None,
        retry_after: float | None = None,
        disable: str | None = None,
    ) -> Outcome:
        """A failed attempt: retried on the schedule (not before Retry-After), or given up."""
        index = claimed.attempt - 1
        exhausted = disable is not None or index >= len(self.schedule)
        next_at = now
        if not exhausted:
            delay = self.schedule[index] * random.uniform(1 - JITTER, 1 + JITTER)
            next_at = now + max(delay, retry_after or 0.0)
        metrics.DELIVERIES.labels(outcome="failed" if exhausted else "retry").inc()
        return Outcome(
            claimed,
            FAILED if exhausted else PENDING,
            now,
            next_at,
            http_status=status,
            latency_ms=latency * 1000,
            response_body=body,
            error=error,
            disable_reason=disable,
        )

    async def _settle_loop(self, settling: asyncio.Event) -> None:
        while True:
            await self._outcomes_ready.wait()
            self._outcomes_ready.clear()
            batch, self._outcomes = self._outcomes, []
            if batch:
                await self._settle_with_retry(batch)
            if settling.is_set() and not self._outcomes:
                return

    async def _settle_with_retry(self, batch: list[Outcome]) -> None:
        for attempt in range(5):
            try:
                await self.settle(batch)
                return
            except Exception as exc:
                log.warning(
                    "relay.send.settle_failed", error=type(exc).__name__, outcomes=len(batch)
                )
                await asyncio.sleep(0.2 * 2**attempt)
        # The leases run out and these deliveries are sent again: at least once, never lost.
        log.error("relay.send.settle_abandoned", outcomes=len(batch))

    async def settle(self, outcomes: list[Outcome]) -> None:
        """Record a group of outcomes and their effect on endpoint health, in one transaction."""
        async with self.database.engine.begin() as conn:
            await settlement.record(
                conn,
                outcomes,
                disable_after_seconds=self.settings.relay_disable_after_seconds,
                actor=self.actor,
            )
        retries = [o.next_attempt_at for o in outcomes if o.status == PENDING]
        for at in retries:
            heapq.heappush(self._retries, at)
        if retries:
            self._rescheduled.set()

    async def _gauges(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                metrics.DELIVERIES_PENDING.set(await store.pending_count(self.database))
            except Exception as exc:
                log.warning("relay.send.gauges_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=GAUGE_SECONDS)


async def _first(*waits: Coroutine[Any, Any, Any], seconds: float) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job entry point, on its own small connection pool: requests holding the shared
    pool's connections must not hold up claims and outcomes."""
    database = Database(runtime.settings.database_url, pool_size=SENDER_POOL_SIZE)
    try:
        await Sender(runtime.settings, database).run(stop)
    finally:
        await database.dispose()
