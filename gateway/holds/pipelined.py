"""Holds on PostgreSQL: each hold, capture or release in two round trips on a direct
psycopg connection (the statements: ``direct``; why two: its docstring). ``service.Holds``
sends PostgreSQL's holds here and decides the same way (``decisions``, ``cover.decide``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from gateway.catalog import accounting
from gateway.catalog.schemas import Catalog
from gateway.db import Database
from gateway.errors import NotFound
from gateway.holds import decisions, direct
from gateway.holds.cover import decide
from gateway.holds.messages import audit_row, message_of, shape
from gateway.holds.models import CAPTURED, RELEASED
from gateway.meters.metering import event_value
from gateway.meters.service import Metered, Meters, Terms
from gateway.meters.store import HOLD_SHARD
from gateway.relay.service import DUE
from gateway.usage import store as usage_store
from gateway.usage.outbox import PENDING
from gateway.usage.parsing import ParsedEvent
from gateway.usage.store import OutboxRow

Connection = psycopg.AsyncConnection[Any]
# A capture's event from the hold's row and the capture's parameters.
CapturedEvent = Callable[[Mapping[str, Any], Mapping[str, Any], float], ParsedEvent]
ZERO = accounting.ZERO


async def hold(
    database: Database,
    meters: Meters,
    catalog: Catalog | None,
    terms: Terms,
    event: ParsedEvent,
    expires_in: int,
    actor: str,
) -> tuple[dict[str, Any], bool] | None:
    """``Holds.hold``'s hold, or None when the customer's wallet was never read."""
    now = time.time()
    period = decisions.period(terms, now)
    rule = meters.rules[event.code]
    subscription = event.external_subscription_id or ""
    _, distinct = event_value(rule, event.properties)
    async with database.direct() as conn, conn.pipeline(), conn.transaction():
        locked = await direct.lock(conn, direct.LOCK, {"c": terms.customer, "now": now})
        facts = await direct.read_for_hold(
            conn, subscription, event.transaction_id, event.code, period[0], distinct
        )
        account = await locked.fetchone()
        found, rows, seen = await direct.hold_facts(facts)
        assert account is not None
        if account["wallet_read_at"] is None:
            return None
        if found is not None:
            return decisions.same(found, event), False
        cover = decide(catalog, rule, terms, event, rows, seen, account)
        row = decisions.new_row(terms, event, period, cover, now, expires_in, actor)
        await direct.insert(conn, row)
        if cover.allowance_units:
            await direct.add_held(conn, row, rule.aggregation, cover.allowance_units, now)
        if cover.tokens:
            held = accounting.decimal(account["held_tokens"]) + cover.tokens
            await direct.set_held_tokens(conn, terms.customer, accounting.text(held))
        message = message_of(row, "hold.created")
        relay = await direct.announce(conn, audit_row(row, "holds.create", actor), message)
    await direct.announced(relay, message)
    database.wake(DUE).set()
    return shape(row), True


@asynccontextmanager
async def _locked(
    database: Database, hold_id: str
) -> AsyncIterator[tuple[Connection, dict[str, Any], dict[str, Any], float]]:
    """The hold and its customer's account, read under the account's lock, in a
    transaction on a pipelined direct connection (404 ``hold_not_found``)."""
    now = time.time()
    async with database.direct() as conn, conn.pipeline(), conn.transaction():
        locked = await direct.lock(conn, direct.LOCK_OF_HOLD, {"id": hold_id, "now": now})
        read = await direct.read_hold(conn, hold_id)
        account = await locked.fetchone()
        row = await read.fetchone()
        if row is None or account is None:
            raise NotFound("no such hold", code="hold_not_found")
        yield conn, row, account, now


async def capture(
    database: Database,
    meters: Meters,
    hold_id: str,
    params: Mapping[str, Any],
    event_of: CapturedEvent,
    actor: str,
) -> dict[str, Any]:
    """``Holds.capture``."""
    async with _locked(database, hold_id) as (conn, row, account, now):
        if row["status"] == CAPTURED:
            return shape(row)
        decisions.check_open(row, now)
        event = event_of(row, params, now)
        accepted = await _accept(conn, meters, event, actor, now)
        await _return(conn, meters, row, account, now)
        units, props = decisions.captured(meters.rules[row["code"]], event)
        await direct.settle(conn, hold_id, CAPTURED, now, units, props)
        row.update(status=CAPTURED, settled_at=now, captured_units=units, properties=props)
        message = message_of(row, "hold.captured")
        relay = await direct.announce(conn, audit_row(row, "holds.capture", actor), message)
    inserted = await accepted.fetchone()
    await direct.announced(relay, message)
    if inserted and inserted[0]:
        database.wake(PENDING).set(1)
    database.wake(DUE).set()
    return shape(row)


async def release(database: Database, meters: Meters, hold_id: str, actor: str) -> dict[str, Any]:
    """``Holds.release``."""
    async with _locked(database, hold_id) as (conn, row, account, now):
        if row["status"] == RELEASED:
            return shape(row)
        decisions.check_open(row, now)
        await _return(conn, meters, row, account, now)
        await direct.settle(conn, hold_id, RELEASED, now)
        row.update(status=RELEASED, settled_at=now)
        message = message_of(row, "hold.released")
        relay = await direct.announce(conn, audit_row(row, "holds.release", actor), message)
    await direct.announced(relay, message)
    database.wake(DUE).set()
    return shape(row)


async def _accept(
    conn: Connection, meters: Meters, event: ParsedEvent, actor: str, now: float
) -> psycopg.AsyncCursor[Any]:
    """Queue the usage event into the outbox and (if new) onto the meters; the cursor's one
    value says whether it was new."""
    sub = event.external_subscription_id or ""
    row = OutboxRow(
        sub, event.transaction_id, event.code, event.payload(), event.fingerprint(), 0, actor
    )
    metered = Metered(
        sub, event.transaction_id, event.code, float(event.timestamp), event.properties
    )
    deltas = await meters.deltas([metered])
    return await conn.execute(*usage_store.direct_accept([row], now, deltas, HOLD_SHARD))


async def _return(
    conn: Connection,
    meters: Meters,
    row: Mapping[str, Any],
    account: Mapping[str, Any],
    now: float,
) -> None:
    """Queue the return of what the hold reserved (``account`` is locked)."""
    if row["allowance_units"]:
        rule = meters.rules.get(row["code"])
        aggregation = rule.aggregation if rule else "count"
        await direct.add_held(conn, row, aggregation, -float(row["allowance_units"]), now)
    tokens = accounting.decimal(row["tokens"])
    if tokens:
        held = max(accounting.decimal(account["held_tokens"]) - tokens, ZERO)
        await direct.set_held_tokens(conn, row["external_customer_id"], accounting.text(held))
