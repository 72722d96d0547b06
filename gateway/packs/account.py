"""The customer's token account (``meter_accounts``) kept as Lago's wallet: settled, pending
and ongoing credits and its recurring rules, read on first sight, after the gateway's own
wallet writes, on Lago's wallet webhooks and by the meters' reconciliation (stale accounts).
The balance and holds read the account, never Lago, on their request paths.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson

from gateway.catalog import accounting
from gateway.catalog.schemas import Catalog, TokenWallet
from gateway.db import Database
from gateway.integrations.lago.client import LagoClient, LagoError
from gateway.logging import get_logger
from gateway.meters import account_store as accounts
from gateway.packs.service import all_pages, token_wallet

log = get_logger(__name__)
ZERO = Decimal(0)


def _q(value: str) -> str:
    return quote(value, safe="")


async def read_wallet(
    lago: LagoClient, config: TokenWallet | None, customer: str
) -> dict[str, Any]:
    """The customer's token wallet as Lago has it: settled, pending and ongoing credits."""
    if config is None:
        return _no_wallet()
    wallet = await token_wallet(lago, config, customer, create=False)
    if wallet is None:
        return _no_wallet()
    return await _credits(lago, wallet)


def _no_wallet() -> dict[str, Any]:
    empty: dict[str, Any] = {"credits": "0", "pending_credits": "0", "ongoing_credits": "0"}
    return {**empty, "lago_wallet_id": None, "rules": None}


async def _credits(lago: LagoClient, wallet: Mapping[str, Any]) -> dict[str, Any]:
    """A Lago wallet's credits, with its paid credits still pending (their invoice unpaid)."""
    pending = await all_pages(
        lago,
        f"/wallets/{_q(str(wallet['lago_id']))}/wallet_transactions",
        "wallet_transactions",
        {"status": "pending", "transaction_status": "purchased"},
    )
    pending_credits = sum((accounting.decimal(t.get("credit_amount")) for t in pending), ZERO)
    rules = wallet.get("recurring_transaction_rules")
    return {
        "rules": orjson.dumps(rules).decode() if rules else None,
        "credits": str(wallet.get("credits_balance") or "0"),
        "pending_credits": accounting.text(pending_credits),
        "ongoing_credits": str(wallet.get("credits_ongoing_balance") or "0"),
        "lago_wallet_id": str(wallet["lago_id"]),
    }


async def refresh_account(
    database: Database, lago: LagoClient, catalog: Catalog | None, customer: str
) -> None:
    """Read the customer's token wallet from Lago into its account (raises LagoError)."""
    config = catalog.token_wallet if catalog else None
    wallet = await read_wallet(lago, config, customer)
    async with database.engine.begin() as conn:
        await accounts.set_wallet(conn, customer, wallet, time.time())


async def refresh_wallet_account(database: Database, lago: LagoClient, lago_wallet_id: str) -> bool:
    """Re-read a wallet an account tracks (a Lago wallet webhook named it); False when no
    account tracks it (a customer the gateway has not read yet reads it when first asked)."""
    async with database.engine.connect() as conn:
        customer = await accounts.account_of_wallet(conn, lago_wallet_id)
    if customer is None:
        return False
    body = await lago.call("GET", f"/wallets/{_q(lago_wallet_id)}")
    wallet = await _credits(lago, body["wallet"])
    async with database.engine.begin() as conn:
        await accounts.set_wallet(conn, customer, wallet, time.time())
    return True


async def refresh_stale_accounts(
    database: Database,
    lago: LagoClient,
    catalog: Catalog | None,
    older_than: float,
    limit: int = 50,
) -> int:
    """Read again the wallets last read more than ``older_than`` seconds ago (the meters'
    reconciliation, for wallets no webhook touched); how many were read."""
    async with database.engine.connect() as conn:
        stale = await accounts.stale_accounts(conn, time.time() - older_than, limit)
    done = 0
    for customer in stale:
        try:
            await refresh_account(database, lago, catalog, customer)
        except LagoError as exc:
            log.warning("packs.account_refresh_failed", error=type(exc).__name__)
            continue
        done += 1
    return done


async def refresh_quietly(
    database: Database, lago: LagoClient, catalog: Catalog | None, customer: str
) -> None:
    """``refresh_account`` after a wallet write: a failure leaves it to the next refresh."""
    try:
        await refresh_account(database, lago, catalog, customer)
    except LagoError as exc:
        log.warning("packs.account_refresh_failed", error=type(exc).__name__)
