"""What became of the forwarder's sends: one ``Outcome`` per batch sent (resends and splits
included), recorded for a whole claim in one transaction (``record``), counted in the metrics
(``count``), and one audit row per batch (``audit_row``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import entry, record_many
from gateway.logging import get_logger
from gateway.usage import metrics, store
from gateway.usage.store import Claimed

log = get_logger(__name__)


@dataclass
class Retry:
    ids: list[int]
    at: float
    reason: str
    tried: bool = True


@dataclass
class Outcome:
    """What became of one sent batch (resends and splits included); a claim's outcomes are
    recorded in one transaction. ``again`` is due at once, without counting an attempt."""

    delivered: list[Claimed] = field(default_factory=list)
    dead: dict[int, str] = field(default_factory=dict)
    again: list[Claimed] = field(default_factory=list)
    retries: list[Retry] = field(default_factory=list)
    requests: int = 0
    status: int | None = None
    elapsed: float = 0.0
    audit: dict[str, Any] | None = None

    def merge(self, other: Outcome) -> Outcome:
        self.delivered += other.delivered
        self.dead.update(other.dead)
        self.again += other.again
        self.retries += other.retries
        self.requests += other.requests
        return self


async def record(conn: AsyncConnection, outcomes: list[Outcome]) -> None:
    """Everything one claim's batches came to, in one transaction."""
    await store.mark_forwarded(conn, [c.id for o in outcomes for c in o.delivered])
    await store.mark_dead(conn, {i: reason for o in outcomes for i, reason in o.dead.items()})
    again = [c.id for o in outcomes for c in o.again]
    await store.reschedule(conn, again, time.time(), None, tried=False)
    for o in outcomes:
        for retry in o.retries:
            await store.reschedule(conn, retry.ids, retry.at, retry.reason, tried=retry.tried)
    await record_many(conn, [o.audit for o in outcomes if o.audit is not None])


def count(outcomes: list[Outcome]) -> None:
    dead = sum(len(o.dead) for o in outcomes)
    metrics.EVENTS_FORWARDED.inc(sum(len(o.delivered) for o in outcomes))
    metrics.EVENTS_DEAD.inc(dead)
    if dead:
        log.warning("usage.forward.dead", events=dead)


def audit_row(outcome: Outcome, actor: str) -> dict[str, Any]:
    """One audit row per batch sent: what was delivered, dead, resent or retried."""
    retried = sum(len(r.ids) for r in outcome.retries)
    if retried and not (outcome.delivered or outcome.dead or outcome.again):
        first = outcome.retries[0]
        delay = max(0.0, first.at - time.time())
        return retry_audit(actor, retried, outcome.status, first.reason, delay, outcome.elapsed)
    row = forward_audit(
        actor,
        outcome.delivered,
        len(outcome.dead),
        len(outcome.again),
        outcome.status,
        outcome.elapsed,
    )
    if retried:
        row["outcome"] = "partial"
    if outcome.requests > 1 or retried:
        row["detail"] = {**row["detail"], "requests": outcome.requests, "retried": retried}
    return row


def forward_audit(
    actor: str, delivered: list[Claimed], dead: int, again: int, status: int | None, elapsed: float
) -> dict[str, Any]:
    return entry(
        actor=actor,
        action="usage.forward",
        upstream="lago",
        status=status,
        outcome="forwarded" if not dead and not again else "partial",
        target_ids=[c.transaction_id for c in delivered],
        latency_ms=elapsed * 1000,
        detail={"forwarded": len(delivered), "dead": dead, "resent": again},
    )


def retry_audit(
    actor: str, events: int, status: int | None, reason: str, delay: float, elapsed: float
) -> dict[str, Any]:
    return entry(
        actor=actor,
        action="usage.forward",
        upstream="lago",
        status=status,
        outcome="retry",
        latency_ms=elapsed * 1000,
        detail={"events": events, "reason": reason, "delay_s": round(delay, 3)},
    )
