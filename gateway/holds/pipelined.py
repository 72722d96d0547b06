"""Holds on PostgreSQL: each hold, capture or release in two round trips on a direct
psycopg connection (the statements and how they travel: ``direct``).

1. ``BEGIN``, the lock of the customer's token account (an upsert that returns the
   account), and what the decision reads, as a statement of its own: under READ COMMITTED a
   statement's snapshot is taken when it starts, so the reads see everything the previous
   holder of the lock committed.
2. Every write (the hold, the meter's ``held``, the held tokens, a capture's outbox row and
   meter deltas, the audit row, the relay message) and ``COMMIT``.

A refusal (402, 409, 422) after the first round trip rolls back. ``service.Holds`` sends
PostgreSQL's holds here and decides the same way (``decisions``, ``cover.decide``).
"""

from __future__ import annotations

import contextlib
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
from gateway.relay.service import DUE, NewMessage, enqueued
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
    async with _transaction(database) as conn:
        read = direct.read_for_hold(
            subscription, event.transaction_id, event.code, period[0], distinct
        )
        _, locked, facts = await direct.send(
            conn, [direct.BEGIN, direct.lock(terms.customer, now), read]
        )
        assert locked
        account = locked[0]
        found, rows, seen = direct.hold_facts(facts)
        if account["wallet_read_at"] is None:
            return None
        if found is not None:
            return decisions.same(found, event), False
        cover = decide(catalog, rule, terms, event, rows, seen, account)
        row = decisions.new_row(terms, event, period, cover, now, expires_in, actor)
        writes = [direct.insert(row)]
        if cover.allowance_units:
            writes.append(direct.add_held(row, rule.aggregation, cover.allowance_units, now))
        if cover.tokens:
            held = accounting.decimal(account["held_tokens"]) + cover.tokens
            writes.append(direct.set_held_tokens(terms.customer, accounting.text(held)))
        message = message_of(row, "hold.created")
        done = await direct.send(conn, _announced(writes, row, "holds.create", actor, message))
    _count(done, message)
    database.wake(DUE).set()
    return shape(row), True


def _announced(
    writes: list[direct.Statement],
    row: Mapping[str, Any],
    action: str,
    actor: str,
    message: NewMessage,
) -> list[direct.Statement]:
    """The writes, then the audit row and the relay message, then ``COMMIT``."""
    return [*writes, *direct.announce(audit_row(row, action, actor), message), direct.COMMIT]


def _count(done: list[direct.Rows], message: NewMessage) -> None:
    """Count the relay message (the result before ``COMMIT``'s)."""
    relayed = done[-2]
    assert relayed
    enqueued([message], list(relayed[0].values()))


@asynccontextmanager
async def _transaction(database: Database) -> AsyncIterator[Connection]:
    """A direct connection whose transaction (begun by ``direct.send``) is rolled back if
    the block raises or returns without committing."""
    async with database.direct() as conn:
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(psycopg.Error):  # a broken connection leaves the pool
                await direct.rollback(conn)
            raise
        await direct.rollback(conn)


@asynccontextmanager
async def _locked(
    database: Database, hold_id: str
) -> AsyncIterator[tuple[Connection, dict[str, Any], dict[str, Any], float]]:
    """The hold and its customer's account, read under the account's lock, in a
    transaction on a direct connection (404 ``hold_not_found``)."""
    now = time.time()
    async with _transaction(database) as conn:
        _, locked, read = await direct.send(
            conn, [direct.BEGIN, direct.lock_of_hold(hold_id, now), direct.read_hold(hold_id)]
        )
        if not locked or not read:
            raise NotFound("no such hold", code="hold_not_found")
        yield conn, read[0], locked[0], now


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
        writes = [await _accept(meters, event, actor, now)]
        writes += _return(meters, row, account, now)
        units, props = decisions.captured(meters.rules[row["code"]], event)
        writes.append(direct.settle(hold_id, CAPTURED, now, units, props))
        row.update(status=CAPTURED, settled_at=now, captured_units=units, properties=props)
        message = message_of(row, "hold.captured")
        done = await direct.send(conn, _announced(writes, row, "holds.capture", actor, message))
    _count(done, message)
    inserted = done[0]
    if inserted and next(iter(inserted[0].values())):
        database.wake(PENDING).set(1)
    database.wake(DUE).set()
    return shape(row)


async def release(database: Database, meters: Meters, hold_id: str, actor: str) -> dict[str, Any]:
    """``Holds.release``."""
    async with _locked(database, hold_id) as (conn, row, account, now):
        if row["status"] == RELEASED:
            return shape(row)
        decisions.check_open(row, now)
        writes = _return(meters, row, account, now)
        writes.append(direct.settle(hold_id, RELEASED, now))
        row.update(status=RELEASED, settled_at=now)
        message = message_of(row, "hold.released")
        done = await direct.send(conn, _announced(writes, row, "holds.release", actor, message))
    _count(done, message)
    database.wake(DUE).set()
    return shape(row)


async def _accept(meters: Meters, event: ParsedEvent, actor: str, now: float) -> direct.Statement:
    """The usage event into the outbox and (if new) onto the meters; its one value says
    whether it was new."""
    sub = event.external_subscription_id or ""
    row = OutboxRow(
        sub, event.transaction_id, event.code, event.payload(), event.fingerprint(), 0, actor
    )
    metered = Metered(
        sub, event.transaction_id, event.code, float(event.timestamp), event.properties
    )
    deltas = await meters.deltas([metered])
    return usage_store.direct_accept([row], now, deltas, HOLD_SHARD)


def _return(
    meters: Meters, row: Mapping[str, Any], account: Mapping[str, Any], now: float
) -> list[direct.Statement]:
    """Giving back what the hold reserved (``account`` is locked)."""
    writes = []
    if row["allowance_units"]:
        rule = meters.rules.get(row["code"])
        aggregation = rule.aggregation if rule else "count"
        writes.append(direct.add_held(row, aggregation, -float(row["allowance_units"]), now))
    tokens = accounting.decimal(row["tokens"])
    if tokens:
        held = max(accounting.decimal(account["held_tokens"]) - tokens, ZERO)
        writes.append(direct.set_held_tokens(row["external_customer_id"], accounting.text(held)))
    return writes
