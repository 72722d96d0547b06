"""Idempotency-Key records of token pack purchases: claim before Lago, store the answer after.

A claim is its own committed transaction, so no Lago call happens while a write is held
and a concurrent duplicate sees the claim: it gets 409 "in progress" instead of buying
again. A finished request's answer is replayed to every repeat with the same key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from gateway.audit.service import record
from gateway.db import Database, utcnow
from gateway.errors import Conflict, ValidationFailed
from gateway.packs import store
from gateway.packs.models import DONE, FAILED, IN_PROGRESS, PackPurchase


@dataclass(frozen=True)
class Claim:
    """This request owns the purchase; ``retry`` means an earlier attempt's outcome is unknown."""

    row_id: int
    purchase_id: str
    retry: bool


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


def fingerprint(external_customer_id: str, pack_code: str) -> str:
    return hashlib.sha256(
        f"token_pack\x00{external_customer_id}\x00{pack_code}".encode()
    ).hexdigest()


async def claim(
    database: Database,
    *,
    actor: str,
    key: str | None,
    external_customer_id: str,
    pack_code: str,
    stale_after: float,
) -> Claim | Replay:
    """Own the purchase for ``key`` (a fresh row), or replay / refuse what the key already did."""
    now = utcnow()
    row = PackPurchase(
        purchase_id=f"tp_{secrets.token_hex(10)}",
        actor=actor,
        idempotency_key=key,
        fingerprint=fingerprint(external_customer_id, pack_code),
        external_customer_id=external_customer_id,
        pack_code=pack_code,
        status=IN_PROGRESS,
        created_at=now,
        claimed_at=now,
    )
    try:
        return Claim(await store.insert(database, row), row.purchase_id, retry=False)
    except IntegrityError:
        if key is None:
            raise
    return await _existing(database, actor, key, row.fingerprint, stale_after)


async def _existing(
    database: Database, actor: str, key: str, fp: str, stale_after: float
) -> Claim | Replay:
    async with database.session() as session:
        row = await store.by_key(session, actor, key)
        if row.fingerprint != fp:
            raise ValidationFailed(
                "this Idempotency-Key was used for another customer or pack",
                code="idempotency_key_reused",
                details={"Idempotency-Key": ["used for another request"]},
            )
        if row.status == DONE:
            return Replay(row.response_status or 200, orjson.loads(row.response_body or "{}"))
        now = utcnow()
        stale = row.claimed_at < now - timedelta(seconds=stale_after)
        if row.status == IN_PROGRESS and not stale:
            raise _in_progress()
        if not await store.reclaim(session, row, now):
            raise _in_progress()
        await session.commit()
        assert row.id is not None
        return Claim(row.id, row.purchase_id, retry=True)


def _in_progress() -> Conflict:
    return Conflict(
        "a purchase with this Idempotency-Key is in progress: retry shortly",
        code="idempotency_key_in_progress",
        headers={"Retry-After": "1"},
    )


async def finish(
    database: Database,
    claimed: Claim,
    *,
    status: int,
    body: dict[str, Any] | None,
    audit: dict[str, Any],
    owed: dict[str, Any] | None = None,
) -> None:
    """Store the answer (``body`` None: outcome unknown, claimable again) with its audit row,
    and ``owed``: the bonus columns of a purchase whose bonus waits for its payment."""
    async with database.session() as session:
        await store.finish(
            session,
            claimed.row_id,
            {
                "status": FAILED if body is None else DONE,
                "response_status": status,
                "response_body": None if body is None else orjson.dumps(body).decode(),
                "completed_at": utcnow(),
                **(owed or {}),
            },
        )
        record(session, **audit)
        await session.commit()


async def release(database: Database, claimed: Claim, *, audit: dict[str, Any]) -> None:
    """Forget the claim (Lago refused: nothing was bought, the key may be used again)."""
    async with database.session() as session:
        await store.remove(session, claimed.row_id)
        record(session, **audit)
        await session.commit()
