"""Token pack clawback: a credit note on a pack's credit invoice takes its tokens back.

Lago voids the refunded paid credits itself (``CreditNotes::CreateService#void_prepaid_credit``:
a ``voided`` wallet transaction naming the credit note) and refuses a refund above what the
wallet still holds. The bonus is the gateway's: the share of the pack's bonus matching the
share of the invoice credited back is voided here (``voided_credits``), no more than the
wallet still holds after Lago's void; the rest was spent and is reported as not taken back.
A bonus not granted yet is lowered instead (withdrawn at 0), so it is never granted.

Both triggers (the gateway's create call and Lago's ``credit_note.created`` webhook) claim
the ``pack_clawbacks`` row of the credit note first (committed before Lago is called); a
retry finds an earlier void by its name (``Token pack clawback (<credit note id>)``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import RowMapping

from gateway.audit.service import record
from gateway.db import Database, utcnow
from gateway.integrations.lago.client import LagoClient
from gateway.logging import get_logger
from gateway.packs import clawback_rows as rows
from gateway.packs.models import BONUS_GRANTED, CLAWBACK_CLAIMED, CLAWBACK_DONE
from gateway.packs.service import all_pages
from gateway.packs.store import OPEN
from gateway.relay.service import enqueue_message

log = get_logger(__name__)
RELAY_TYPE = "packs.tokens.clawed_back"
ACTION = "packs.clawback"
QUANTUM = Decimal("0.00001")


class ClawbackBusy(Exception):
    """Another trigger holds this clawback, or the purchase's owed bonus is leased right
    now; try again later."""


@dataclass(frozen=True)
class Clawback:
    """What one credit note took back from a pack, in credits (decimal text)."""

    credit_note_id: str
    purchase_id: str
    external_customer_id: str
    pack: str
    lago_wallet_id: str
    paid_credits_voided: str
    bonus_credits: str
    bonus_credits_voided: str
    not_taken_back: str
    bonus: str
    lago_transaction_id: str | None = None


def share_of(note: dict[str, Any]) -> Decimal:
    """The part of the invoice's fees the credit note's items take back (0 to 1)."""
    items = note.get("items") or []
    taken = sum((Decimal(int(i.get("amount_cents") or 0)) for i in items), Decimal(0))
    fees = {
        (i.get("fee") or {}).get("lago_id"): int((i.get("fee") or {}).get("amount_cents") or 0)
        for i in items
    }
    whole = Decimal(sum(fees.values()))
    return min(taken / whole, Decimal(1)) if whole > 0 else Decimal(0)


def _text(value: Decimal) -> str:
    text = format(value.quantize(QUANTUM, rounding=ROUND_DOWN), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


async def claw_back(
    database: Database, lago: LagoClient, note: dict[str, Any], *, actor: str, lease: float
) -> Clawback | None:
    """Take back what a credit note on a pack's invoice refunds; None when the invoice is not
    a pack's, nothing is taken back, or it was done. ``ClawbackBusy`` when another trigger
    holds it (a webhook is retried later); a failure gives the claim back and propagates."""
    purchase = await rows.purchase_for_invoice(database, str(note.get("lago_invoice_id")))
    share = share_of(note)
    if purchase is None or share <= 0 or not purchase["lago_wallet_id"]:
        return None
    now = utcnow()
    values = {
        "credit_note_id": str(note["lago_id"]),
        "purchase_id": purchase["purchase_id"],
        "external_customer_id": purchase["external_customer_id"],
    }
    claimed = await rows.claim(database, values, now, now + timedelta(seconds=lease))
    if claimed == CLAWBACK_DONE:
        return None
    if claimed != CLAWBACK_CLAIMED:
        raise ClawbackBusy(values["credit_note_id"])
    started = time.perf_counter()
    try:
        done = await _take(database, lago, purchase, values["credit_note_id"], share)
    except BaseException:
        await rows.release(database, values["credit_note_id"], utcnow())
        raise
    await _record(database, done, actor, (time.perf_counter() - started) * 1000)
    return done


async def _take(
    database: Database, lago: LagoClient, purchase: RowMapping, note_id: str, share: Decimal
) -> Clawback:
    wallet_id = str(purchase["lago_wallet_id"])
    path = f"/wallets/{quote(wallet_id, safe='')}/wallet_transactions"
    voided = await all_pages(lago, path, "wallet_transactions", {"transaction_status": "voided"})
    paid = sum(
        (
            Decimal(str(t["credit_amount"]))
            for t in voided
            if t.get("lago_credit_note_id") == note_id
        ),
        Decimal(0),
    )
    wanted = Decimal(purchase["bonus_credits"] or "0") * share
    base = {
        "credit_note_id": note_id,
        "purchase_id": purchase["purchase_id"],
        "external_customer_id": purchase["external_customer_id"],
        "pack": purchase["pack_code"],
        "lago_wallet_id": wallet_id,
        "paid_credits_voided": _text(paid),
        "bonus_credits": _text(wanted),
    }
    if purchase["bonus_status"] in OPEN:
        return await _withdraw(database, purchase, base, wanted)
    if purchase["bonus_status"] != BONUS_GRANTED or wanted <= 0:
        return Clawback(**base, bonus_credits_voided="0", not_taken_back="0", bonus="none")
    earlier = [t for t in voided if note_id in str(t.get("name") or "")]
    made: str | None
    if earlier:
        taken, made = Decimal(str(earlier[0]["credit_amount"])), str(earlier[0]["lago_id"])
    else:
        taken, made = await _void(lago, wallet_id, note_id, wanted)
    missing = _text(max(wanted - taken, Decimal(0)))
    return Clawback(
        **base, bonus_credits_voided=_text(taken), not_taken_back=missing, bonus="granted",
        lago_transaction_id=made,
    )  # fmt: skip


async def _void(
    lago: LagoClient, wallet_id: str, note_id: str, wanted: Decimal
) -> tuple[Decimal, str | None]:
    """Void up to ``wanted`` credits: no more than the wallet holds (the rest was spent)."""
    wallet = (await lago.call("GET", f"/wallets/{quote(wallet_id, safe='')}"))["wallet"]
    held = Decimal(str(wallet.get("credits_balance") or "0"))
    taken = Decimal(_text(min(wanted, held)))
    if taken <= 0:
        return Decimal(0), None
    request = {
        "wallet_id": wallet_id,
        "voided_credits": str(taken),
        "name": f"Token pack clawback ({note_id})",
        "metadata": [{"key": "gateway_clawback_for_credit_note", "value": note_id}],
    }
    answer = await lago.call("POST", "/wallet_transactions", json={"wallet_transaction": request})
    return taken, str(answer["wallet_transactions"][0]["lago_id"])


async def _withdraw(
    database: Database, purchase: RowMapping, base: dict[str, Any], wanted: Decimal
) -> Clawback:
    """A bonus still owed is lowered by the share (nothing to void in Lago)."""
    remaining = _text(max(Decimal(purchase["bonus_credits"] or "0") - wanted, Decimal(0)))
    async with database.engine.begin() as conn:
        lowered = await rows.withdraw_owed(conn, int(purchase["id"]), remaining, utcnow())
    if not lowered:
        raise ClawbackBusy(str(purchase["purchase_id"]))
    return Clawback(**base, bonus_credits_voided=base["bonus_credits"], not_taken_back="0",
                    bonus="withdrawn")  # fmt: skip


async def _record(database: Database, done: Clawback, actor: str, latency_ms: float) -> None:
    """Done, with its audit row and relay message, in one transaction."""
    stored = {k: v for k, v in asdict(done).items() if k in _STORED}
    async with database.session() as session:
        conn = await session.connection()
        if not await rows.finish(conn, done.credit_note_id, stored, utcnow()):
            return
        complete = Decimal(done.not_taken_back) == 0
        record(
            session, actor=actor, action=ACTION, outcome="complete" if complete else "partial",
            target=done.external_customer_id, target_ids=[done.purchase_id, done.credit_note_id],
            upstream="lago", status=200, latency_ms=latency_ms, detail=asdict(done),
        )  # fmt: skip
        await enqueue_message(
            conn,
            message_id=f"msg_gateway_packs_clawback_{done.credit_note_id}",
            type=RELAY_TYPE,
            source="gateway",
            data=asdict(done),
        )
        await session.commit()
    log.info(ACTION, purchase_id=done.purchase_id, complete=complete)


_STORED = (
    "paid_credits_voided",
    "bonus_credits",
    "bonus_credits_voided",
    "not_taken_back",
    "lago_transaction_id",
)
