"""Token accounts' statements: a customer's copy of Lago's wallet and the tokens holds
reserve (``meter_accounts``), in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

ACCOUNT_COLUMNS = (
    "external_customer_id, credits, held_tokens, pending_credits, ongoing_credits, "
    "wallet_rules, lago_wallet_id, wallet_read_at"
)


# The account of a customer, created if new, locked (``:c``, ``:now``); its row: the account.
LOCK_ACCOUNT = (
    "INSERT INTO meter_accounts (external_customer_id, credits, held_tokens, touched_at) "
    "VALUES (:c, '0', '0', :now) ON CONFLICT (external_customer_id) DO UPDATE "
    f"SET touched_at = excluded.touched_at RETURNING {ACCOUNT_COLUMNS}"
)
SET_HELD_TOKENS = "UPDATE meter_accounts SET held_tokens = :h WHERE external_customer_id = :c"


async def lock_account(
    conn: AsyncConnection, external_customer_id: str, now: float
) -> dict[str, Any]:
    """The customer's token account, created if new, and locked for the caller's transaction:
    an upsert that writes the row takes its lock on PostgreSQL and SQLite's write lock."""
    result = await conn.execute(text(LOCK_ACCOUNT), {"c": external_customer_id, "now": now})
    return dict(result.one()._mapping)


async def account(conn: AsyncConnection, external_customer_id: str) -> dict[str, Any] | None:
    result = await conn.execute(
        text(f"SELECT {ACCOUNT_COLUMNS} FROM meter_accounts WHERE external_customer_id = :c"),
        {"c": external_customer_id},
    )
    row = result.first()
    return None if row is None else dict(row._mapping)


async def set_held_tokens(conn: AsyncConnection, external_customer_id: str, held: str) -> None:
    await conn.execute(
        text(SET_HELD_TOKENS),
        {"h": held, "c": external_customer_id},
    )


async def set_wallet(
    conn: AsyncConnection,
    external_customer_id: str,
    wallet: dict[str, Any],
    now: float,
) -> None:
    """Lago's wallet as just read (``credits``, ``pending_credits``, ``ongoing_credits``,
    ``lago_wallet_id``), creating the account if new."""
    await conn.execute(
        text(
            "INSERT INTO meter_accounts (external_customer_id, credits, held_tokens, "
            "pending_credits, ongoing_credits, wallet_rules, lago_wallet_id, wallet_read_at, "
            "touched_at) VALUES (:c, :cr, '0', :pe, :on, :ru, :w, :now, :now) "
            "ON CONFLICT (external_customer_id) DO UPDATE SET credits = excluded.credits, "
            "pending_credits = excluded.pending_credits, "
            "ongoing_credits = excluded.ongoing_credits, wallet_rules = excluded.wallet_rules, "
            "lago_wallet_id = excluded.lago_wallet_id, wallet_read_at = excluded.wallet_read_at"
        ),
        {
            "c": external_customer_id,
            "cr": wallet["credits"],
            "pe": wallet["pending_credits"],
            "on": wallet["ongoing_credits"],
            "ru": wallet.get("rules"),
            "w": wallet["lago_wallet_id"],
            "now": now,
        },
    )


async def stale_accounts(conn: AsyncConnection, before: float, limit: int) -> list[str]:
    """Customers whose wallet was last read before ``before`` (oldest first)."""
    result = await conn.execute(
        text(
            "SELECT external_customer_id FROM meter_accounts "
            "WHERE wallet_read_at IS NULL OR wallet_read_at < :before "
            "ORDER BY wallet_read_at LIMIT :limit"
        ),
        {"before": before, "limit": limit},
    )
    return [row[0] for row in result]


async def account_of_wallet(conn: AsyncConnection, lago_wallet_id: str) -> str | None:
    """The customer whose account tracks this Lago wallet."""
    result = await conn.execute(
        text("SELECT external_customer_id FROM meter_accounts WHERE lago_wallet_id = :w"),
        {"w": lago_wallet_id},
    )
    row = result.first()
    return None if row is None else str(row[0])
