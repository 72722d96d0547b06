"""Recording delivery outcomes: the attempts, and what they mean for each endpoint's health.

One group of outcomes is written in one transaction: every attempt, endpoints healthy again,
endpoints newly failing, and endpoints disabled (410 Gone at once, or failing for longer than
``relay_disable_after_seconds``), each disablement announced as a ``gateway.endpoint.disabled``
message and audited.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import entry, record_many
from gateway.logging import get_logger
from gateway.relay import metrics, store
from gateway.relay.service import enqueue_message
from gateway.relay.store import Outcome

log = get_logger(__name__)


async def record(
    conn: AsyncConnection, outcomes: list[Outcome], *, disable_after_seconds: float, actor: str
) -> None:
    """Write a group of outcomes and their effect on endpoint health (in ``conn``'s transaction)."""
    healthy, failing, newly_failing, disable = _endpoint_effects(outcomes)
    await store.record_outcomes(conn, outcomes)
    await store.mark_healthy(conn, healthy)
    await store.mark_failing(conn, newly_failing)
    cutoff = time.time() - disable_after_seconds
    for endpoint_id in await store.failing_longer_than(conn, sorted(failing), cutoff):
        disable.setdefault(endpoint_id, "failing for too long")
    for endpoint_id, reason in sorted(disable.items()):
        await _disable(conn, endpoint_id, reason, actor)


async def _disable(conn: AsyncConnection, endpoint_id: str, reason: str, actor: str) -> None:
    disabled = await store.disable_endpoint(conn, endpoint_id, reason)
    if disabled is None:
        return
    metrics.ENDPOINTS_DISABLED.labels(reason="gone" if "410" in reason else "failing").inc()
    await enqueue_message(
        conn,
        message_id=f"msg_{uuid.uuid4().hex}",
        type="gateway.endpoint.disabled",
        source="gateway",
        data={"endpoint_id": endpoint_id, "url": disabled["url"], "reason": reason},
    )
    await record_many(
        conn,
        [
            entry(
                actor=actor,
                action="relay.endpoint.disable",
                outcome="disabled",
                target=endpoint_id,
                detail={"reason": reason},
            )
        ],
    )
    log.warning("relay.endpoint.disabled", endpoint_id=endpoint_id, reason=reason)


def _endpoint_effects(
    outcomes: list[Outcome],
) -> tuple[list[str], dict[str, float], dict[str, float], dict[str, str]]:
    """From each endpoint's latest attempt in the group: healthy again, failing, newly failing.

    Also the endpoints to disable at once (410). Healthy endpoints staying healthy cost no write.
    """
    latest: dict[str, Outcome] = {}
    disable: dict[str, str] = {}
    for outcome in sorted(outcomes, key=lambda o: o.attempted_at):
        if outcome.attempted and outcome.claimed.target is not None:
            latest[outcome.claimed.endpoint_id] = outcome
        if outcome.disable_reason is not None:
            disable[outcome.claimed.endpoint_id] = outcome.disable_reason
    healthy: list[str] = []
    failing: dict[str, float] = {}
    newly: dict[str, float] = {}
    for endpoint_id, outcome in sorted(latest.items()):
        was_failing = outcome.claimed.target is not None and (
            outcome.claimed.target.failing_since is not None
        )
        if outcome.succeeded:
            if was_failing:
                healthy.append(endpoint_id)
        else:
            failing[endpoint_id] = outcome.attempted_at
            if not was_failing:
                newly[endpoint_id] = outcome.attempted_at
    return healthy, failing, newly, disable
