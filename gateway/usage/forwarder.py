"""The forwarder: drains the outbox into Lago's batch endpoint, exactly once per event.

Lago keeps the first copy of a (subscription, transaction id) and answers 422
``value_already_exist`` for a resend, so a resend after a crash or a lost answer is
harmless; the forwarder resends byte-identical payloads and reads the answers (``sink``):

- A request never holds one transaction id twice (``batching``), so a ``value_already_exist``
  at an index means Lago holds that event: it is delivered. Where a batch could not be cut
  that way, such an event is resent alone, and only that answer decides.
- Other indexed errors dead-letter their event with Lago's reason; the rest is resent.
- An answer that names no event (413, 400, a 422 without indexes) is about one of the
  batch's events: the batch is split in halves, recursively, until the culprit stands alone
  and is dead-lettered with the answer. A 5xx is split the same way; when both halves fail
  as the whole did, it is Lago, not an event.
- "Lago is unwell" (a 5xx to both halves, 429, 401/403, a timeout, a refused connection)
  pauses all loops of the process (``health``) without pushing any event's next attempt
  out; the first probe or send Lago takes makes everything due again at once.

Order: events are claimed oldest first, several batches in flight, so per subscription
they reach Lago roughly, not strictly, in acceptance order; Lago's sums and counts do
not depend on arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import Any

import orjson

from gateway.db import HeldConnection
from gateway.jobs import idle
from gateway.logging import get_logger
from gateway.runtime import Runtime
from gateway.usage import metrics, store
from gateway.usage import outcomes as outcomes_
from gateway.usage.batching import distinct_ids, pack
from gateway.usage.checks import recheck
from gateway.usage.health import LagoHealth
from gateway.usage.lookups import LagoLookups
from gateway.usage.outbox import PENDING
from gateway.usage.outcomes import Outcome, Retry
from gateway.usage.sink import LagoBatchSink, SinkResult, UsageSink, Verdict, is_duplicate
from gateway.usage.store import Claimed

log = get_logger(__name__)
ACTOR = f"worker:{socket.gethostname()}:{os.getpid()}"
IDLE_POLL_SECONDS = 0.5
CLAIM_BATCHES = 4
GAUGE_SECONDS = 5.0
# An event Lago answers 5xx when sent alone, while Lago takes other requests in between,
# is dead-lettered at the third such answer; meanwhile it waits RETRY_ALONE_SECONDS * 4^n.
STRIKES_TO_DEAD = 3
RETRY_ALONE_SECONDS = 0.5
_GLOBAL_STATUSES = frozenset({401, 403, 408, 429})
_TAKEN = (Verdict.DELIVERED, Verdict.INDEXED)


class Forwarder:
    def __init__(
        self, runtime: Runtime, lookups: LagoLookups, sink: UsageSink | None = None
    ) -> None:
        self.runtime = runtime
        self.lookups = lookups
        self.sink = sink or LagoBatchSink(runtime.lago)
        settings = runtime.settings
        self.batch_size = settings.forward_batch_size
        self.batch_bytes = settings.forward_batch_max_bytes
        self.lease = settings.forward_lease_seconds
        self.backoff_max = settings.forward_backoff_max_seconds
        self.health = LagoHealth(
            self._probe,
            first_interval=settings.forward_probe_min_seconds,
            last_interval=settings.forward_probe_max_seconds,
            max_wait=settings.forward_backoff_max_seconds,
        )
        self._strikes: dict[int, tuple[int, float]] = {}  # row id: (strikes, when)
        self._last_taken = 0.0  # monotonic: when Lago last took a request

    async def run(self, stop: asyncio.Event) -> None:
        loops = [
            asyncio.create_task(self._loop(stop))
            for _ in range(self.runtime.settings.forward_concurrency)
        ]
        gauges = asyncio.create_task(self._gauges(stop))
        try:
            await asyncio.gather(*loops, gauges)
        finally:
            for task in (*loops, gauges):
                task.cancel()
            await self.health.close()

    async def _loop(self, stop: asyncio.Event) -> None:
        wake = self.runtime.database.wake(PENDING)
        held = store.claim_connection(self.runtime.database, self.lease)
        cursor = store.ClaimCursor()
        try:
            while not stop.is_set():
                await self.health.wait_well(stop)
                if stop.is_set():
                    break
                if await self.forward_due(held=held, cursor=cursor):
                    continue
                wake.take()
                await idle(stop, wake, IDLE_POLL_SECONDS)
        finally:
            await held.release()

    async def forward_due(
        self,
        limit: int | None = None,
        *,
        held: HeldConnection | None = None,
        cursor: store.ClaimCursor | None = None,
    ) -> int:
        """Claim due events, send them in batches (in parallel), record what became of each.

        Returns how many events were claimed: none while Lago is unwell (forwarding is
        paused). By default a claim takes several batches: one claim and one settling
        transaction then serve CLAIM_BATCHES requests to Lago. ``held`` is the caller's
        claiming connection (``store.claim_connection``); without one, a connection is
        taken for this call alone. ``cursor`` is the calling loop's place in the queue: after
        a full claim the next one starts past it (see ``store.claim``).
        """
        cursor = cursor or store.ClaimCursor()
        after, cursor.after = cursor.after, None
        if not self.health.well:
            return 0
        if held is None:
            held = store.claim_connection(self.runtime.database, self.lease)
            try:
                return await self.forward_due(limit, held=held)
            finally:
                await held.release()
        limit = limit or self.batch_size * CLAIM_BATCHES
        try:
            async with store.claim(held, limit, self.lease, after) as claim:
                if not claim.events:
                    return 0
                outcomes = await self._deliver(claim.events)
                async with claim.settle() as conn:
                    await outcomes_.record(conn, outcomes)
        except BaseException:
            await held.release()  # it may be broken: the next claim takes a fresh one
            raise
        outcomes_.count(outcomes)
        if len(claim.events) == limit and self.health.well:
            cursor.after = max(event.key for event in claim.events)
        return len(claim.events)

    async def _deliver(self, claimed: list[Claimed]) -> list[Outcome]:
        checked, dead = await recheck(self.lookups, claimed)
        if checked is None:
            # Lago cannot tell: it is unwell as a whole; the events stay due.
            reason = "Lago unreachable for checks"
            self.health.failed(reason)
            ids = [c.id for c in dead]
            outcome = Outcome(retries=[Retry(ids, time.time(), reason, tried=False)])
            outcome.audit = outcomes_.retry_audit(ACTOR, len(ids), None, reason, 0.0, 0.0)
            return [outcome]
        batches = pack(checked, self.batch_size, self.batch_bytes)
        outcomes = list(await asyncio.gather(*(self._send(batch) for batch in batches)))
        if dead:
            outcomes.append(
                Outcome(
                    dead={c.id: reason for c, reason in dead.items()},
                    audit=outcomes_.forward_audit(ACTOR, [], len(dead), 0, None, 0.0),
                )
            )
        return outcomes

    async def _send(self, batch: list[Claimed]) -> Outcome:
        """One batch, and whatever its answer calls for (resends alone, splits)."""
        started = time.perf_counter()
        result = await self._attempt(batch)
        outcome = await self._follow(batch, result, sibling_taken=False)
        outcome.status = result.status
        outcome.elapsed = time.perf_counter() - started
        outcome.audit = outcomes_.audit_row(outcome, ACTOR)
        return outcome

    async def _probe(self) -> bool:
        if answered := await self.runtime.lago.probe():
            self._last_taken = time.monotonic()
        return answered

    async def _attempt(self, batch: list[Claimed]) -> SinkResult:
        started = time.perf_counter()
        result = await self.sink.send_batch([c.payload for c in batch])
        metrics.FORWARD_LATENCY.observe(time.perf_counter() - started)
        if result.verdict in _TAKEN:
            self._last_taken = time.monotonic()
            self.health.succeeded()
        return result

    async def _follow(
        self, batch: list[Claimed], result: SinkResult, *, sibling_taken: bool
    ) -> Outcome:
        """What Lago's answer to ``batch`` means for each of its events."""
        outcome = Outcome(requests=1)
        if result.verdict is Verdict.DELIVERED:
            outcome.delivered = list(batch)
            for event in batch:
                self._strikes.pop(event.id, None)
            return outcome
        if result.verdict is Verdict.INDEXED:
            return outcome.merge(await self._by_index(batch, result.errors))
        if result.verdict is Verdict.UNNAMED:
            if len(batch) > 1:
                return outcome.merge(await self._split(batch, result))
            outcome.dead[batch[0].id] = result.reason or f"Lago answered {result.status}"
            return outcome
        return outcome.merge(await self._unwell(batch, result, sibling_taken=sibling_taken))

    async def _by_index(self, batch: list[Claimed], errors: dict[int, Any]) -> Outcome:
        """Lago's 422 by index; nothing of the batch was stored (all or nothing)."""
        outcome = Outcome()
        conclusive = distinct_ids(batch)
        alone: list[Claimed] = []
        for index, event in enumerate(batch):
            details = errors.get(index)
            if details is None:
                outcome.again.append(event)
            elif is_duplicate(details):
                (outcome.delivered if conclusive else alone).append(event)
            else:
                outcome.dead[event.id] = orjson.dumps(details).decode()
        for single in await asyncio.gather(*(self._resend_alone(e) for e in alone)):
            outcome.merge(single)
        return outcome

    async def _resend_alone(self, event: Claimed) -> Outcome:
        """A request of its own, whose answer can only be about this event."""
        return await self._follow([event], await self._attempt([event]), sibling_taken=False)

    async def _split(self, batch: list[Claimed], result: SinkResult) -> Outcome:
        """Send each half on its own: an answer that named no event names one half."""
        metrics.FORWARD_SPLITS.inc()
        half = len(batch) // 2
        parts = [batch[:half], batch[half:]]
        results = await asyncio.gather(*(self._attempt(part) for part in parts))
        if result.verdict is Verdict.UNWELL and not any(r.verdict in _TAKEN for r in results):
            failed = next((r for r in results if r.verdict is Verdict.UNWELL), results[0])
            return self._pause(batch, failed, requests=2)
        outcome = Outcome()
        taken = [r.verdict in _TAKEN for r in results]
        for i, (part, part_result) in enumerate(zip(parts, results, strict=True)):
            outcome.merge(await self._follow(part, part_result, sibling_taken=taken[1 - i]))
        return outcome

    async def _unwell(
        self, batch: list[Claimed], result: SinkResult, *, sibling_taken: bool
    ) -> Outcome:
        """A 5xx may be about an event of the batch (split it); the rest is about Lago."""
        if result.answered and result.status not in _GLOBAL_STATUSES:
            if len(batch) > 1:
                return await self._split(batch, result)
            return self._struck(batch[0], result, sibling_taken=sibling_taken)
        return self._pause(batch, result)

    def _pause(self, batch: list[Claimed], result: SinkResult, requests: int = 0) -> Outcome:
        """Lago as a whole failed: pause forwarding; the events stay due."""
        reason = result.reason or "Lago unwell"
        self.health.failed(reason, result.retry_after)
        metrics.FORWARD_RETRIES.inc()
        log.warning("usage.forward.retry", status=result.status, reason=reason, events=len(batch))
        return Outcome(
            requests=requests, retries=[Retry([c.id for c in batch], time.time(), reason)]
        )

    def _struck(self, event: Claimed, result: SinkResult, *, sibling_taken: bool) -> Outcome:
        """A 5xx to an event sent alone: Lago fails on it, or Lago is down. It counts
        against the event when Lago took another request since the event's last strike."""
        reason = result.reason or "Lago unwell"
        strikes, at = self._strikes.get(event.id, (0, 0.0))
        if strikes == 0 or self._last_taken > at:
            strikes += 1
        if strikes >= STRIKES_TO_DEAD:
            self._strikes.pop(event.id, None)
            return Outcome(dead={event.id: f"{reason} (sent alone, {strikes} times)"})
        self._strikes[event.id] = (strikes, time.monotonic())
        if not sibling_taken:
            self.health.failed(reason, result.retry_after)
        delay = min(self.backoff_max, RETRY_ALONE_SECONDS * 4 ** (strikes - 1))
        metrics.FORWARD_RETRIES.inc()
        return Outcome(retries=[Retry([event.id], time.time() + delay, reason)])

    async def _gauges(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                status = await store.status(self.runtime.database, with_rate=False)
            except Exception as exc:
                log.warning("usage.forward.gauges_failed", error=type(exc).__name__)
            else:
                metrics.EVENTS_PENDING.set(status.pending)
                metrics.OLDEST_PENDING_AGE.set(status.oldest_pending_age_seconds or 0.0)
                metrics.EVENTS_DEAD_STORED.set(status.dead)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=GAUGE_SECONDS)


async def run(runtime: Runtime, lookups: LagoLookups, stop: asyncio.Event) -> None:
    """Worker job entry point."""
    await Forwarder(runtime, lookups).run(stop)
