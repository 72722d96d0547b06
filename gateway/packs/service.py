"""Token packs and promo codes: a pack is one Lago wallet top-up, a promo code one applied coupon.

A pack's top-up carries only its paid credits: they become a Lago ``credit`` invoice and
stay pending until it is paid, as in Lago. The bonus (the pack's granted credits) is
recorded as owed on the purchase and granted by ``gateway.packs.settlement`` once the
paid credits settle, so nothing is spendable before the customer has paid. Each top-up is
named after the gateway's purchase id, so a retry whose first attempt had an unknown
outcome finds it in Lago instead of buying again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from gateway.catalog.schemas import Catalog, TokenPack, TokenWallet
from gateway.db import Database, utcnow
from gateway.errors import GatewayError, NotFound, UpstreamRejected, ValidationFailed, from_lago
from gateway.integrations.lago.client import LagoApiError, LagoClient, LagoError
from gateway.packs import idempotency
from gateway.packs.idempotency import Claim, Replay
from gateway.packs.models import AWAITING_PAYMENT


@dataclass(frozen=True)
class Purchase:
    status: int
    body: dict[str, Any]
    replayed: bool


def pack_of(catalog: Catalog | None, code: str) -> tuple[TokenPack, TokenWallet]:
    """The catalog's pack ``code`` and the wallet it tops up, or 404 naming it."""
    pack = catalog.pack(code) if catalog else None
    if pack is None or catalog is None or catalog.token_wallet is None:
        known = ", ".join(p.code for p in catalog.token_packs) if catalog else ""
        raise NotFound(
            f"no token pack {code!r}" + (f" (packs: {known})" if known else ""),
            code="token_pack_not_found",
        )
    return pack, catalog.token_wallet


async def buy_pack(
    database: Database,
    lago: LagoClient,
    catalog: Catalog | None,
    *,
    actor: str,
    external_customer_id: str,
    pack_code: str,
    idempotency_key: str | None,
    stale_after: float,
) -> Purchase:
    """Buy ``pack_code`` once per Idempotency-Key; repeats replay the first answer."""
    pack, wallet = pack_of(catalog, pack_code)
    claimed = await idempotency.claim(
        database,
        actor=actor,
        key=idempotency_key,
        external_customer_id=external_customer_id,
        pack_code=pack.code,
        stale_after=stale_after,
    )
    if isinstance(claimed, Replay):
        return Purchase(claimed.status, claimed.body, replayed=True)
    audit: dict[str, Any] = {
        "actor": actor,
        "action": "packs.token_pack.buy",
        "target": external_customer_id,
        "target_ids": [claimed.purchase_id],
        "upstream": "lago",
        "detail": {"pack": pack.code},
    }
    started = time.perf_counter()
    try:
        body = await _top_up(lago, wallet, pack, external_customer_id, claimed)
    except LagoError as exc:
        error = from_lago(exc)
        audit.update(latency_ms=_since(started), status=error.status)
        if isinstance(error, UpstreamRejected):
            # Lago refused, so nothing was bought: free the key for a corrected retry.
            await idempotency.release(database, claimed, audit={**audit, "outcome": "rejected"})
        else:
            await idempotency.finish(
                database,
                claimed,
                status=error.status,
                body=None,
                audit={**audit, "outcome": "failed"},
            )
        raise error from exc
    audit.update(latency_ms=_since(started), status=201, outcome="success")
    owed = _owed(body, pack.granted_credits(wallet))
    await idempotency.finish(database, claimed, status=201, body=body, audit=audit, owed=owed)
    return Purchase(201, body, replayed=False)


def _owed(body: dict[str, Any], bonus: Decimal) -> dict[str, Any]:
    """The purchase's bonus columns: owed until the paid transaction settles (none, no bonus)."""
    purchase = body["token_pack_purchase"]
    paid = next(
        (t for t in purchase["wallet_transactions"] if t["transaction_status"] == "purchased"),
        None,
    )
    if paid is None or bonus <= 0:
        return {}
    return {
        "lago_wallet_id": purchase["lago_wallet_id"],
        "lago_transaction_id": paid["lago_id"],
        "lago_invoice_id": purchase["lago_invoice_id"],
        "bonus_status": AWAITING_PAYMENT,
        "bonus_credits": _text(bonus),
        "bonus_next_check_at": utcnow(),
    }


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def _top_up(
    lago: LagoClient, config: TokenWallet, pack: TokenPack, customer_id: str, claimed: Claim
) -> dict[str, Any]:
    wallet = await token_wallet(lago, config, customer_id, create=True)
    assert wallet is not None
    if claimed.retry:
        earlier = await transactions_of(
            lago, str(wallet["lago_id"]), claimed.purchase_id, "purchased"
        )
        if earlier:
            return _answer(pack, config, customer_id, wallet, earlier, claimed.purchase_id)
    request: dict[str, Any] = {
        "wallet_id": wallet["lago_id"],
        "paid_credits": _text(pack.paid_credits(config)),
        "name": f"{pack.name} token pack ({claimed.purchase_id})",
        "metadata": [{"key": "gateway_purchase_id", "value": claimed.purchase_id}],
    }
    answer = await lago.call("POST", "/wallet_transactions", json={"wallet_transaction": request})
    made = answer.get("wallet_transactions") or []
    return _answer(pack, config, customer_id, wallet, made, claimed.purchase_id)


def _text(credits: Any) -> str:
    return format(credits, "f")


def _answer(
    pack: TokenPack,
    config: TokenWallet,
    customer_id: str,
    wallet: dict[str, Any],
    transactions: list[dict[str, Any]],
    purchase_id: str,
) -> dict[str, Any]:
    paid = next((t for t in transactions if t.get("transaction_status") == "purchased"), None)
    bonus = pack.granted_credits(config)
    return {
        "token_pack_purchase": {
            "purchase_id": purchase_id,
            "pack": pack.code,
            "external_customer_id": customer_id,
            "tokens": pack.total_tokens,
            "paid_credits": _text(pack.paid_credits(config)),
            "granted_credits": _text(bonus),
            "amount_cents": pack.price_cents,
            "currency": config.currency,
            "status": paid.get("status") if paid else "settled",
            "lago_wallet_id": wallet["lago_id"],
            "lago_invoice_id": paid.get("lago_invoice_id") if paid else None,
            "bonus_status": AWAITING_PAYMENT if paid and bonus > 0 else None,
            "wallet_transactions": [
                {
                    key: t.get(key)
                    for key in ("lago_id", "transaction_status", "status", "credit_amount")
                }
                for t in transactions
            ],
        }
    }


async def all_pages(
    lago: LagoClient, path: str, root: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every item of a paginated Lago list."""
    items: list[dict[str, Any]] = []
    page: int | None = 1
    while page:
        body = await lago.call("GET", path, params={**params, "page": page, "per_page": 100})
        items += body.get(root) or []
        next_page = (body.get("meta") or {}).get("next_page")
        page = int(next_page) if next_page else None
    return items


async def token_wallet(
    lago: LagoClient, config: TokenWallet, customer_id: str, *, create: bool
) -> dict[str, Any] | None:
    """The customer's active token wallet; created on first use when ``create``."""
    for attempt in range(2):
        path = f"/customers/{quote(customer_id, safe='')}/wallets"
        wallets = await all_pages(lago, path, "wallets", {})
        for wallet in wallets:
            if wallet.get("code") == config.code and wallet.get("status") == "active":
                return wallet
        if not create:
            return None
        body = {
            "external_customer_id": customer_id,
            "currency": config.currency,
            "rate_amount": config.rate_amount,
            "name": config.name,
            "code": config.code,
        }
        try:
            created = await lago.call("POST", "/wallets", json={"wallet": body})
        except LagoApiError as exc:
            # Another request created it first: read it back once.
            if exc.status == 422 and "value_already_exist" in str(exc.body) and attempt == 0:
                continue
            raise
        made: dict[str, Any] = created["wallet"]
        return made
    return None


async def transactions_of(
    lago: LagoClient, wallet_id: str, purchase_id: str, transaction_status: str
) -> list[dict[str, Any]]:
    """The wallet's transactions of this kind made for ``purchase_id`` (by name or metadata)."""
    found = await all_pages(
        lago,
        f"/wallets/{quote(wallet_id, safe='')}/wallet_transactions",
        "wallet_transactions",
        {"transaction_status": transaction_status},
    )
    return [
        t
        for t in found
        if purchase_id in str(t.get("name") or "")
        or any(m.get("value") == purchase_id for m in t.get("metadata") or [])
    ]


async def apply_promo_code(
    lago: LagoClient, *, external_customer_id: str, code: str
) -> dict[str, Any]:
    """Apply the coupon ``code``; Lago's refusals become clear 4xx errors.

    Lago applies a coupon past its ``expiration_at`` until its hourly job terminates it
    (``AppliedCoupons::CreateService`` checks ``coupon.active?`` only), so the coupon is read
    first and an expired one refused here.
    """
    try:
        coupon = (await lago.call("GET", f"/coupons/{quote(code, safe='')}")).get("coupon") or {}
    except LagoError as exc:
        raise promo_error(exc, code) from exc
    if _expired(coupon):
        raise ValidationFailed(
            f"promo code {code!r} expired",
            code="promo_code_expired",
            details={"coupon": ["coupon_is_expired"]},
        )
    body = {"applied_coupon": {"external_customer_id": external_customer_id, "coupon_code": code}}
    try:
        answer = await lago.call("POST", "/applied_coupons", json=body)
    except LagoError as exc:
        raise promo_error(exc, code) from exc
    return {"applied_coupon": answer.get("applied_coupon")}


def _expired(coupon: dict[str, Any]) -> bool:
    if coupon.get("terminated_at"):
        return True
    expires = coupon.get("expiration_at")
    if coupon.get("expiration") != "time_limit" or not expires:
        return False
    return datetime.fromisoformat(str(expires).replace("Z", "+00:00")) <= datetime.now(UTC)


def promo_error(exc: LagoError, code: str) -> GatewayError:
    """404 for an unknown code, 422 naming why Lago would not apply it, else Lago's error."""
    if not isinstance(exc, LagoApiError):
        return from_lago(exc)
    details = exc.body.get("error_details") or {}
    reasons = {str(r) for values in details.values() if isinstance(values, list) for r in values}
    if exc.status == 404 and exc.body.get("code") == "coupon_not_found":
        return NotFound(f"no promo code {code!r} (unknown or expired)", code="promo_code_not_found")
    if exc.status == 422 and "coupon_is_not_reusable" in reasons:
        return ValidationFailed(code="promo_code_already_applied", details=details)
    return from_lago(exc)
