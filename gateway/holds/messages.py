"""A hold as the API answers it, and the audit row and relay message of each change."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.service import entry, record_many
from gateway.relay.service import NewMessage, enqueue_many, new_message


def shape(row: Mapping[str, Any]) -> dict[str, Any]:
    """A hold as the API answers it."""
    return {
        "id": row["id"],
        "status": row["status"],
        "external_subscription_id": row["external_subscription_id"],
        "external_customer_id": row["external_customer_id"],
        "transaction_id": row["transaction_id"],
        "code": row["code"],
        "properties": orjson.loads(row["properties"]),
        "units": row["units"],
        "paid_from": row["paid_from"],
        "allowance_units": row["allowance_units"],
        "tokens": row["tokens"],
        "captured_units": row["captured_units"],
        "created_at": _iso(row["created_at"]),
        "expires_at": _iso(row["expires_at"]),
        "settled_at": None if row["settled_at"] is None else _iso(row["settled_at"]),
    }


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


async def announce(
    conn: AsyncConnection, row: Mapping[str, Any], kind: str, action: str, actor: str
) -> None:
    """The audit row and the relay message of a hold's change, in its transaction."""
    await record_many(conn, [audit_row(row, action, actor)])
    await enqueue_many(conn, [message_of(row, kind)])


def audit_row(row: Mapping[str, Any], action: str, actor: str) -> dict[str, Any]:
    """The audit row of a hold's change."""
    return entry(
        actor=actor,
        action=action,
        outcome="success",
        target=row["id"],
        target_ids=[row["external_subscription_id"], row["transaction_id"]],
        detail={
            "code": row["code"],
            "units": row["units"],
            "paid_from": row["paid_from"],
            "tokens": row["tokens"],
        },
    )


def message_of(row: Mapping[str, Any], kind: str) -> NewMessage:
    """The relay message of a hold's change (``hold.captured``...)."""
    return new_message(
        message_id=f"msg_gateway_{kind.replace('.', '_')}_{row['id']}",
        type=kind,
        source="gateway",
        data={"hold": shape(row)},
    )
