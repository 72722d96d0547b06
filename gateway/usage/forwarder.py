"""The forwarder: drains the outbox into Lago's batch endpoint, exactly once per event.

Lago keeps the first copy of a (subscription, transaction id) and answers 422
``value_already_exist`` for a resend, so a resend after a crash or a lost answer is
harmless; the forwarder only has to resend byte-identical payloads and read the 422s.
Order: events are claimed oldest first, several batches in flight, so per subscription
they reach Lago roughly, not strictly, in acceptance order; Lago's sums and counts do
not depend on arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import entry, record_many
from gateway.db import HeldConnection
from gateway.integrations.lago.client import LagoClient, LagoUnavailable
from gateway.jobs import idle
from gateway.logging import get_logger
from gateway.runtime import Runtime
from gateway.usage import metrics, store
from gateway.usage.lookups import Known, LagoLookups
from gateway.usage.store import Claimed

log = get_logger(__name__)
ACTOR = f"worker:{socket.gethostname()}:{os.getpid()}"
IDLE_POLL_SECONDS = 0.5
CLAIM_BATCHES = 4
GAUGE_SECONDS = 5.0


class UsageSink(Protocol):
    """Where forwarded events go: Lago's REST batch endpoint today, a Kafka topic tomorrow."""

    async def send_batch(self, payloads: list[str]) -> SinkResult: ...


@dataclass
class SinkResult:
    """``errors`` maps a batch index to Lago's validation details for that event."""

    ok: bool
    status: int | None = None
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)
    retry_after: float | None = None
    reason: str | None = None


class LagoBatchSink:
    """Sends to ``POST /api/v1/events/batch``; the body is the stored payloads, byte for byte."""

    def __init__(self, lago: LagoClient) -> None:
        self._lago = lago

    async def send_batch(self, payloads: list[str]) -> SinkResult:
        body = ('{"events":[' + ",".join(payloads) + "]}").encode()
        try:
            response = await self._lago.send("POST", "/events/batch", body=body)
        except LagoUnavailable as exc:
            return SinkResult(ok=False, reason=exc.reason)
        if response.status_code < 300:
            return SinkResult(ok=True, status=response.status_code)
        retry_after = _retry_after(response.headers.get("retry-after"))
        if response.status_code == 422:
            errors = _indexed_errors(response.content, len(payloads))
            if errors is not None:
                return SinkResult(ok=False, status=422, errors=errors)
        return SinkResult(
            ok=False,
            status=response.status_code,
            retry_after=retry_after,
            reason=f"Lago answered {response.status_code}",
        )


def _retry_after(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def _indexed_errors(content: bytes, size: int) -> dict[int, dict[str, Any]] | None:
    try:
        details = orjson.loads(content).get("error_details")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(details, dict) or not details:
        return None
    if all(key.isdigit() and int(key) < size for key in details):
        return {int(key): value for key, value in details.items()}
    if size == 1 and "events" not in details:
        return {0: details}
    return None


def is_duplicate(details: dict[str, Any]) -> bool:
    return set(details) == {"transaction_id"} and details["transaction_id"] == [
        "value_already_exist"
    ]


class Backoff:
    """Shared by a process's forwarding loops: when Lago struggles, all of them pause."""

    def __init__(self, maximum: float) -> None:
        self.maximum = maximum
        self.failures = 0
        self.resume_at = 0.0

    def failed(self, retry_after: float | None) -> float:
        self.failures += 1
        delay = min(self.maximum, 0.25 * 2.0 ** min(self.failures - 1, 20))
        delay = delay * (0.5 + random.random() / 2)
        delay = max(delay, float(retry_after or 0.0))
        self.resume_at = max(self.resume_at, time.monotonic() + delay)
        return delay

    def succeeded(self) -> None:
        self.failures = 0

    async def wait(self) -> None:
        pause = self.resume_at - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)


@dataclass
class _Outcome:
    """What became of one sent batch; outcomes of one claim are recorded in one transaction.

    ``again`` is resent at once and ``retry`` at ``retry_at``; ``tried`` says whether Lago
    was asked (an attempt is counted) or a check before sending could not run.
    """

    delivered: list[Claimed] = field(default_factory=list)
    dead: dict[int, str] = field(default_factory=dict)
    again: list[Claimed] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    retry_at: float = 0.0
    tried: bool = True
    reason: str | None = None
    audit: dict[str, Any] | None = None


class Forwarder:
    def __init__(self, runtime: Runtime, sink: UsageSink | None = None) -> None:
        self.runtime = runtime
        self.sink = sink or LagoBatchSink(runtime.lago)
        settings = runtime.settings
        self.batch_size = settings.forward_batch_size
        self.lease = settings.forward_lease_seconds
        self.backoff = Backoff(settings.forward_backoff_max_seconds)

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

    async def _loop(self, stop: asyncio.Event) -> None:
        wake = self.runtime.ingest.new_events
        held = store.claim_connection(self.runtime.database, self.lease)
        try:
            while not stop.is_set():
                await self.backoff.wait()
                if await self.forward_due(held=held):
                    continue
                wake.clear()
                await idle(stop, wake, IDLE_POLL_SECONDS)
        finally:
            await held.release()

    async def forward_due(
        self, limit: int | None = None, *, held: HeldConnection | None = None
    ) -> int:
        """Claim due events, send them in batches (in parallel), record what became of each.

        Returns how many events were claimed. By default a claim takes several batches: one
        claim and one settling transaction then serve CLAIM_BATCHES requests to Lago.
        ``held`` is the caller's claiming connection (``store.claim_connection``); without
        one, a connection is taken for this call alone.
        """
        if held is None:
            held = store.claim_connection(self.runtime.database, self.lease)
            try:
                return await self.forward_due(limit, held=held)
            finally:
                await held.release()
        limit = limit or self.batch_size * CLAIM_BATCHES
        try:
            async with store.claim(held, limit, self.lease) as claim:
                if not claim.events:
                    return 0
                outcomes = await self._deliver(claim.events)
                async with claim.settle() as conn:
                    await self._record(conn, outcomes)
        except BaseException:
            await held.release()  # it may be broken: the next claim takes a fresh one
            raise
        self._count(outcomes)
        return len(claim.events)

    async def _deliver(self, claimed: list[Claimed]) -> list[_Outcome]:
        checked, dead = await _recheck(self.runtime.lookups, claimed)
        if checked is None:
            reason = "Lago unreachable for checks"
            return [
                _Outcome(
                    retry=[c.id for c in dead],
                    retry_at=time.time() + 1.0,
                    tried=False,
                    reason=reason,
                    audit=_retry_audit(len(dead), None, reason, 1.0, 0.0),
                )
            ]
        size = self.batch_size
        batches = [checked[i : i + size] for i in range(0, len(checked), size)]
        outcomes = list(await asyncio.gather(*(self._send(batch) for batch in batches)))
        if dead:
            outcomes.append(
                _Outcome(
                    dead={c.id: reason for c, reason in dead.items()},
                    audit=_forward_audit([], len(dead), 0, None, 0.0),
                )
            )
        return outcomes

    async def _send(self, batch: list[Claimed]) -> _Outcome:
        started = time.perf_counter()
        result = await self.sink.send_batch([c.payload for c in batch])
        elapsed = time.perf_counter() - started
        metrics.FORWARD_LATENCY.observe(elapsed)
        if result.ok:
            self.backoff.succeeded()
            return _Outcome(
                delivered=batch, audit=_forward_audit(batch, 0, 0, result.status, elapsed)
            )
        if result.errors:
            self.backoff.succeeded()
            outcome = _Outcome()
            for index, item in enumerate(batch):
                details = result.errors.get(index)
                if details is None:
                    outcome.again.append(item)
                elif is_duplicate(details):
                    outcome.delivered.append(item)
                else:
                    outcome.dead[item.id] = orjson.dumps(details).decode()
            outcome.audit = _forward_audit(
                outcome.delivered, len(outcome.dead), len(outcome.again), 422, elapsed
            )
            return outcome
        delay = self.backoff.failed(result.retry_after)
        metrics.FORWARD_RETRIES.inc()
        reason = result.reason or "error"
        log.warning(
            "usage.forward.retry",
            status=result.status,
            reason=reason,
            events=len(batch),
            delay=round(delay, 2),
        )
        return _Outcome(
            retry=[c.id for c in batch],
            retry_at=time.time() + delay,
            reason=reason,
            audit=_retry_audit(len(batch), result.status, reason, delay, elapsed),
        )

    @staticmethod
    async def _record(conn: AsyncConnection, outcomes: list[_Outcome]) -> None:
        """Everything one claim's batches came to, in one transaction."""
        await store.mark_forwarded(conn, [c.id for o in outcomes for c in o.delivered])
        await store.mark_dead(conn, {i: reason for o in outcomes for i, reason in o.dead.items()})
        again = [c.id for o in outcomes for c in o.again]
        await store.reschedule(conn, again, time.time(), None, tried=False)
        for o in outcomes:
            if o.retry:
                await store.reschedule(conn, o.retry, o.retry_at, o.reason, tried=o.tried)
        await record_many(conn, [o.audit for o in outcomes if o.audit is not None])

    @staticmethod
    def _count(outcomes: list[_Outcome]) -> None:
        dead = sum(len(o.dead) for o in outcomes)
        metrics.EVENTS_FORWARDED.inc(sum(len(o.delivered) for o in outcomes))
        metrics.EVENTS_DEAD.inc(dead)
        if dead:
            log.warning("usage.forward.dead", events=dead)

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


def _forward_audit(
    delivered: list[Claimed], dead: int, again: int, status: int | None, elapsed: float
) -> dict[str, Any]:
    return entry(
        actor=ACTOR,
        action="usage.forward",
        upstream="lago",
        status=status,
        outcome="forwarded" if not dead and not again else "partial",
        target_ids=[c.transaction_id for c in delivered],
        latency_ms=elapsed * 1000,
        detail={"forwarded": len(delivered), "dead": dead, "resent": again},
    )


def _retry_audit(
    events: int, status: int | None, reason: str, delay: float, elapsed: float
) -> dict[str, Any]:
    return entry(
        actor=ACTOR,
        action="usage.forward",
        upstream="lago",
        status=status,
        outcome="retry",
        latency_ms=elapsed * 1000,
        detail={"events": events, "reason": reason, "delay_s": round(delay, 3)},
    )


async def _recheck(
    lookups: LagoLookups, claimed: list[Claimed]
) -> tuple[list[Claimed] | None, dict[Claimed, str]]:
    """Events accepted while Lago was unreachable are checked before they are sent.

    Returns (events to send, events found invalid with the reason); None to send when Lago
    still cannot tell (then the second item holds the whole batch to retry). The distinct
    metrics and subscriptions are looked up concurrently: each lookup waits for Lago at most
    a second, and the claim is held open meanwhile.
    """
    unchecked = [c for c in claimed if c.needs_check]
    if not unchecked:
        return claimed, {}
    codes = sorted({c.code for c in unchecked})
    subscriptions = sorted({c.external_subscription_id for c in unchecked})
    answers = await asyncio.gather(
        *(lookups.metric(code) for code in codes),
        *(lookups.subscription(sub) for sub in subscriptions),
    )
    if Known.UNSURE in answers:
        return None, dict.fromkeys(claimed, "")
    metric = dict(zip(codes, answers[: len(codes)], strict=True))
    subscription = dict(zip(subscriptions, answers[len(codes) :], strict=True))
    send: list[Claimed] = []
    dead: dict[Claimed, str] = {}
    for c in claimed:
        if not c.needs_check:
            send.append(c)
        elif metric[c.code] is Known.NO:
            dead[c] = '{"code":["billable_metric_not_found"]}'
        elif subscription[c.external_subscription_id] is Known.NO:
            dead[c] = '{"external_subscription_id":["subscription_not_found"]}'
        else:
            send.append(c)
    return send, dead


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job entry point."""
    await Forwarder(runtime).run(stop)
