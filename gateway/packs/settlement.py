"""Pack bonuses: owed at purchase, granted once, after the paid credits settled in Lago.

Every trigger (Lago webhooks in ``gateway.packs.handlers``, the periodic
``gateway.packs.reconciler``) first leases the purchase row, committed before Lago is
called, so two processes never work on one bonus at once. A grant looks in Lago for an
earlier grant of the purchase (its id is in the transaction name) before making one, so a
lost answer is adopted, not repeated; the row becomes ``bonus_granted`` in the same
transaction as its audit row and its ``packs.bonus.granted`` relay message. A failed
call keeps the lease until it expires: a grant still in flight at Lago is visible by then.

    awaiting_payment ──paid credits settled──▶ bonus_granted
            │                                       ▲
            └──payment failed──▶ payment_failed ────┘ (paid later after all)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from gateway.audit.service import record
from gateway.config import Settings
from gateway.db import Database, utcnow
from gateway.integrations.lago.client import LagoApiError, LagoClient
from gateway.logging import get_logger
from gateway.packs import store
from gateway.packs.service import all_pages, transactions_of
from gateway.relay.service import enqueue_message

log = get_logger(__name__)
SETTLED = "settled"
FAILED = "failed"
RELAY_TYPE = "packs.bonus.granted"
MAX_CHECK_SECONDS = 3600.0
FAILED_CHECK_SECONDS = 6 * 3600.0
FAILED_WATCH_DAYS = 30


class BonusBusy(Exception):
    """Another process holds this purchase's bonus right now; try again later."""


@dataclass(frozen=True)
class Owed:
    """A leased purchase whose bonus is still open."""

    row_id: int
    purchase_id: str
    external_customer_id: str
    pack_code: str
    bonus_credits: str
    bonus_status: str
    wallet_id: str
    transaction_id: str
    checks: int
    created_at: datetime
    lease_until: datetime


def lease_seconds(settings: Settings) -> float:
    """Longer than all the Lago calls one holder makes (each has an explicit timeout)."""
    return settings.lago_timeout_seconds * 6 + 10


def _owed(m: Any) -> Owed:
    return Owed(
        m["id"], m["purchase_id"], m["external_customer_id"], m["pack_code"],
        m["bonus_credits"], m["bonus_status"], m["lago_wallet_id"], m["lago_transaction_id"],
        m["bonus_checks"], m["created_at"], m["bonus_lease_until"],
    )  # fmt: skip


async def claim(
    database: Database,
    *,
    lease: float,
    transaction_id: str | None = None,
    invoice_id: str | None = None,
    now: datetime | None = None,
) -> Owed | None:
    """Lease the purchase of this paid transaction (or credit invoice) while its bonus is open.

    None: no such purchase, or its bonus is settled; BonusBusy: another process holds it."""
    now = now or utcnow()
    column = "lago_transaction_id" if transaction_id else "lago_invoice_id"
    until = now + timedelta(seconds=lease)
    match = (column, str(transaction_id or invoice_id))
    row, busy = await store.lease_open(database, match, until, now)
    if row is not None:
        return _owed(row)
    if busy:
        raise BonusBusy(f"purchase {busy[0]} is being settled by another process")
    return None


async def claim_due(database: Database, *, limit: int, lease: float, now: datetime) -> list[Owed]:
    """Lease up to ``limit`` open bonuses due for a check (others skip them: SKIP LOCKED)."""
    until = now + timedelta(seconds=lease)
    rows = await store.lease_due(database, limit=limit, until=until, now=now)
    return [_owed(row) for row in rows]


async def paid_statuses(lago: LagoClient, wallet_id: str) -> dict[str, str]:
    """The status (pending, settled, failed) of every paid top-up of the wallet, by Lago id."""
    found = await all_pages(
        lago,
        f"/wallets/{quote(wallet_id, safe='')}/wallet_transactions",
        "wallet_transactions",
        {"transaction_status": "purchased"},
    )
    return {str(t["lago_id"]): str(t.get("status")) for t in found}


async def settle(
    database: Database,
    lago: LagoClient,
    owed: Owed,
    paid_status: str | None,
    *,
    actor: str,
    via: str,
    reconcile_seconds: float,
    now: datetime | None = None,
    recheck_soon: bool = False,
) -> str:
    """Grant the bonus (paid credits settled), withhold it (failed), or check again later.

    Returns ``granted``, ``failed`` or ``pending``. A Lago error propagates; unless Lago
    refused (4xx), the lease is left to expire, so a retry cannot overtake a grant in flight."""
    now = now or utcnow()
    if paid_status == SETTLED:
        try:
            await _grant(database, lago, owed, actor=actor, via=via)
        except LagoApiError as exc:
            if not exc.retryable:  # refused, so nothing was granted: try again later
                await _release(
                    database, owed, now + timedelta(seconds=_delay(reconcile_seconds, owed))
                )
            raise
        return "granted"
    if paid_status == FAILED:
        await _withhold(database, owed, actor=actor, via=via, now=now)
        return "failed"
    later = now if recheck_soon else now + timedelta(seconds=_delay(reconcile_seconds, owed))
    await _release(database, owed, later)
    return "pending"


async def _release(database: Database, owed: Owed, next_check_at: datetime) -> None:
    async with database.engine.begin() as conn:
        await store.release(conn, owed.row_id, owed.lease_until, next_check_at)


def _delay(reconcile_seconds: float, owed: Owed) -> float:
    """Seconds to the next check of a still-pending payment: doubling, capped at an hour."""
    return min(reconcile_seconds * 2.0 ** min(owed.checks, 20), MAX_CHECK_SECONDS)


def _bonus_name(owed: Owed) -> str:
    return f"Token pack bonus ({owed.purchase_id})"


async def _grant(database: Database, lago: LagoClient, owed: Owed, *, actor: str, via: str) -> None:
    started = time.perf_counter()
    earlier = await transactions_of(lago, owed.wallet_id, owed.purchase_id, "granted")
    if earlier:
        made, adopted = earlier[0], True
        log.warning("packs.bonus.adopted", purchase_id=owed.purchase_id, lago_id=made["lago_id"])
    else:
        request = {
            "wallet_id": owed.wallet_id,
            "granted_credits": owed.bonus_credits,
            "name": _bonus_name(owed),
            "metadata": [{"key": "gateway_bonus_for_purchase", "value": owed.purchase_id}],
        }
        answer = await lago.call(
            "POST", "/wallet_transactions", json={"wallet_transaction": request}
        )
        made, adopted = answer["wallet_transactions"][0], False
    latency = (time.perf_counter() - started) * 1000
    await _record_grant(database, owed, str(made["lago_id"]), actor, via, adopted, latency)


async def _record_grant(
    database: Database,
    owed: Owed,
    grant_id: str,
    actor: str,
    via: str,
    adopted: bool,
    latency_ms: float,
) -> None:
    async with database.session() as session:
        conn = await session.connection()
        done = await store.mark_granted(conn, owed.row_id, grant_id, utcnow())
        if done:
            data = _granted(owed, grant_id)
            record(
                session, actor=actor, action="packs.bonus.granted", outcome="success",
                target=owed.external_customer_id, target_ids=[owed.purchase_id, grant_id],
                upstream="lago", status=200, latency_ms=latency_ms,
                detail={"pack": owed.pack_code, "bonus_credits": owed.bonus_credits,
                        "via": via, "adopted": adopted},
            )  # fmt: skip
            await enqueue_message(
                conn,
                message_id=f"msg_gateway_packs_bonus_{owed.purchase_id}",
                type=RELAY_TYPE,
                source="gateway",
                data=data,
            )
        await session.commit()
    if done:
        log.info("packs.bonus.granted", purchase_id=owed.purchase_id, via=via, adopted=adopted)


def _granted(owed: Owed, grant_id: str) -> dict[str, Any]:
    return {
        "purchase_id": owed.purchase_id,
        "external_customer_id": owed.external_customer_id,
        "pack": owed.pack_code,
        "bonus_credits": owed.bonus_credits,
        "lago_wallet_id": owed.wallet_id,
        "lago_paid_transaction_id": owed.transaction_id,
        "lago_bonus_transaction_id": grant_id,
    }


async def _withhold(database: Database, owed: Owed, *, actor: str, via: str, now: datetime) -> None:
    """The payment failed: no bonus. Still watched a while, in case it is paid after all."""
    watch_until = owed.created_at + timedelta(days=FAILED_WATCH_DAYS)
    later = now + timedelta(seconds=FAILED_CHECK_SECONDS)
    async with database.session() as session:
        conn = await session.connection()
        failed = await store.mark_payment_failed(conn, owed.row_id)
        await store.release(
            conn, owed.row_id, owed.lease_until, later if later < watch_until else None
        )
        if failed:
            record(
                session, actor=actor, action="packs.bonus.withheld", outcome="payment_failed",
                target=owed.external_customer_id, target_ids=[owed.purchase_id],
                upstream="lago", detail={"pack": owed.pack_code, "via": via},
            )  # fmt: skip
        await session.commit()
    if failed:
        log.info("packs.bonus.withheld", purchase_id=owed.purchase_id, via=via)
