"""Reconciliation of pack bonuses (worker job, every ``GATEWAY_PACKS_RECONCILE_SECONDS``, 60 s).

Webhooks get lost, so the reconciler asks Lago directly: purchases whose bonus is open
are leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: any number of workers), their paid
top-ups' statuses read (one list per wallet), and the bonus granted (settled), withheld
(failed) or checked again later (pending: after 1, 2, 4… intervals, at most an hour).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from datetime import datetime

from gateway.db import Database, utcnow
from gateway.integrations.lago.client import LagoClient
from gateway.jobs import log_failure
from gateway.logging import get_logger
from gateway.packs import settlement
from gateway.packs.settlement import Owed
from gateway.runtime import Runtime

log = get_logger(__name__)
ACTOR = "reconciler"
BATCH = 100


async def _wallet(
    database: Database,
    lago: LagoClient,
    reconcile_seconds: float,
    wallet_id: str,
    owed: list[Owed],
    now: datetime,
) -> Counter[str]:
    done: Counter[str] = Counter()
    statuses = await settlement.paid_statuses(lago, wallet_id)
    for purchase in owed:
        try:
            outcome = await settlement.settle(
                database,
                lago,
                purchase,
                statuses.get(purchase.transaction_id),
                actor=ACTOR,
                via="reconciler",
                reconcile_seconds=reconcile_seconds,
                now=now,
            )
        except Exception as exc:
            log.warning("packs.reconcile.purchase_failed", purchase_id=purchase.purchase_id,
                        error=type(exc).__name__)  # fmt: skip
            outcome = "error"
        done[outcome] += 1
    return done


async def run_once(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """One pass over the bonuses due for a check; returns the outcomes, by kind."""
    now = now or utcnow()
    lease = settlement.lease_seconds(runtime.settings)
    done: Counter[str] = Counter()
    while True:
        claimed = await settlement.claim_due(runtime.database, limit=BATCH, lease=lease, now=now)
        by_wallet: dict[str, list[Owed]] = defaultdict(list)
        for owed in claimed:
            by_wallet[owed.wallet_id].append(owed)
        for wallet_id, owed_here in by_wallet.items():
            try:
                done += await _wallet(
                    runtime.database,
                    runtime.lago,
                    runtime.settings.packs_reconcile_seconds,
                    wallet_id,
                    owed_here,
                    now,
                )
            except Exception as exc:
                # Their leases expire; the next pass tries again.
                log.warning("packs.reconcile.wallet_failed", wallet_id=wallet_id,
                            error=type(exc).__name__)  # fmt: skip
                done["error"] += len(owed_here)
        if len(claimed) < BATCH:
            break
    if done.keys() - {"pending"}:
        log.info("packs.reconcile.done", **done)
    return dict(done)


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Worker job entry point."""
    while not stop.is_set():
        try:
            await run_once(runtime)
        except Exception as exc:
            log_failure(log, "packs.reconcile.failed", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=runtime.settings.packs_reconcile_seconds)
