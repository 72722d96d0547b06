"""Relay retention: old messages whose every delivery is finished go, with their history."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from gateway import worker
from gateway.db import Database
from gateway.relay import messages, retention
from gateway.relay.models import CANCELLED, DELIVERED, FAILED, PENDING
from tests.conftest import Gateway
from tests.relay.conftest import create_endpoint, enqueue, eventually, sending
from tests.relay.receiver import Receiver

DAY = 86_400.0
NOW = time.time()
OLD = NOW - 40 * DAY

# (endpoint id, delivery status, last attempt at); "ep_gone" has no endpoint row (deleted).
Delivery = tuple[str, str, float | None]


async def _endpoints(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO relay_endpoints (id, url, description, filter_types, enabled, "
                "secret, created_at, updated_at) VALUES (:id, 'http://receiver.test/x', '', "
                "'[\"*\"]', :enabled, 'whsec_x', :at, :at)"
            ),
            [
                {"id": "ep_on", "enabled": True, "at": OLD},
                {"id": "ep_off", "enabled": False, "at": OLD},
            ],
        )


async def _message(
    database: Database, message_id: str, deliveries: list[Delivery], received_at: float = OLD
) -> None:
    """A message with its deliveries, each with two attempts on record."""
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO relay_messages (id, type, source, created_at, received_at, body) "
                "VALUES (:id, 'invoice.created', 'lago', :at, :at, '{}')"
            ),
            {"id": message_id, "at": received_at},
        )
        for endpoint_id, status, last_attempt_at in deliveries:
            delivery = await conn.execute(
                text(
                    "INSERT INTO relay_deliveries (message_id, endpoint_id, status, attempts, "
                    "next_attempt_at, created_at, last_attempt_at) "
                    "VALUES (:m, :e, :s, 2, :at, :at, :last) RETURNING id"
                ),
                {"m": message_id, "e": endpoint_id, "s": status, "at": received_at,
                 "last": last_attempt_at},
            )  # fmt: skip
            delivery_id = delivery.scalar_one()
            await conn.execute(
                text(
                    "INSERT INTO relay_attempts (delivery_id, message_id, endpoint_id, attempt, "
                    "attempted_at, outcome, latency_ms) VALUES (:d, :m, :e, :n, :at, 'failed', 1)"
                ),
                [
                    {"d": delivery_id, "m": message_id, "e": endpoint_id, "n": n, "at": received_at}
                    for n in (1, 2)
                ],
            )


async def _ids(database: Database, table: str) -> set[str]:
    async with database.engine.connect() as conn:
        column = "id" if table == "relay_messages" else "message_id"
        return {row[0] for row in await conn.execute(text(f"SELECT {column} FROM {table}"))}


async def _audits(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT actor, outcome, detail FROM audit_entries "
                "WHERE action = 'relay.retention.prune' ORDER BY id"
            )
        )
        # A JSON column read through raw SQL: a string on SQLite, parsed on PostgreSQL.
        return [
            {"actor": r[0], "outcome": r[1],
             "detail": orjson.loads(r[2]) if isinstance(r[2], str) else r[2]}
            for r in rows
        ]  # fmt: skip


async def test_old_finished_messages_go_with_deliveries_and_attempts_the_rest_stay(
    relay_gateway: Gateway,
) -> None:
    database = relay_gateway.runtime.database
    await _endpoints(database)
    gone = {
        "delivered": [("ep_on", DELIVERED, OLD), ("ep_off", DELIVERED, OLD)],
        "endpoint_deleted": [("ep_gone", CANCELLED, None)],
        "given_up_endpoint_disabled": [("ep_on", DELIVERED, OLD), ("ep_off", FAILED, OLD)],
        "given_up_endpoint_deleted": [("ep_gone", FAILED, OLD)],
        "nobody_subscribed": [],
    }
    kept = {
        "retrying": [("ep_on", DELIVERED, OLD), ("ep_off", PENDING, OLD)],
        "failed_endpoint_enabled": [("ep_on", FAILED, OLD)],
        "redelivered_lately": [("ep_on", DELIVERED, NOW - DAY)],
    }
    for message_id, deliveries in {**gone, **kept}.items():
        await _message(database, message_id, deliveries)
    await _message(database, "young", [("ep_on", DELIVERED, NOW)], received_at=NOW - 29 * DAY)
    counted = REGISTRY.get_sample_value("gateway_relay_messages_pruned_total") or 0.0

    assert await retention.prune(database, 30, now=NOW) == len(gone)

    remaining = {*kept, "young"}
    assert await _ids(database, "relay_messages") == remaining
    assert await _ids(database, "relay_deliveries") == remaining
    assert await _ids(database, "relay_attempts") == remaining
    (audit,) = await _audits(database)
    assert audit["actor"].startswith("worker:") and audit["outcome"] == "deleted"
    assert (audit["detail"]["messages"], audit["detail"]["deliveries"]) == (5, 6)
    assert audit["detail"]["attempts"] == 12
    assert REGISTRY.get_sample_value("gateway_relay_messages_pruned_total") == counted + 5


async def test_a_pruned_message_is_unknown_to_the_api_and_cannot_be_redelivered(
    relay_gateway: Gateway,
) -> None:
    database = relay_gateway.runtime.database
    await _endpoints(database)
    await _message(database, "m_old", [("ep_on", DELIVERED, OLD)])
    await retention.prune(database, 30, now=NOW)
    admin = await relay_gateway.headers("admin")
    reader = await relay_gateway.headers("billing:read")

    pruned = await relay_gateway.client.post("/gateway/messages/m_old/redeliver", headers=admin)
    unknown = await relay_gateway.client.post("/gateway/messages/m_never/redeliver", headers=admin)
    shown = await relay_gateway.client.get("/gateway/messages/m_old", headers=reader)

    assert (pruned.status_code, unknown.status_code, shown.status_code) == (404, 404, 404)
    assert pruned.json()["code"] == unknown.json()["code"] == "message_not_found"
    assert await _ids(database, "relay_deliveries") == set()  # no orphan delivery queued


async def test_an_old_message_redelivered_before_the_prune_is_kept_until_delivered(
    relay_gateway: Gateway,
) -> None:
    database = relay_gateway.runtime.database
    await _endpoints(database)
    await _message(database, "m_old", [("ep_on", DELIVERED, OLD)])
    admin = await relay_gateway.headers("admin")
    again = await relay_gateway.client.post("/gateway/messages/m_old/redeliver", headers=admin)
    assert again.json()["endpoint_ids"] == ["ep_on"]

    assert await retention.prune(database, 30, now=NOW) == 0
    assert await _ids(database, "relay_messages") == {"m_old"}


async def test_messages_the_sender_delivered_are_pruned_once_old(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    await create_endpoint(relay_gateway, filter_types=["*"])
    database = relay_gateway.runtime.database
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m_sent", "invoice.created")
        await eventually(lambda: receiver.received)
    assert await retention.prune(database, 30) == 0  # young
    assert (await _ids(database, "relay_deliveries")) == {"m_sent"}
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE relay_messages SET received_at = :at"), {"at": OLD})
        await conn.execute(
            text("UPDATE relay_deliveries SET created_at = :at, last_attempt_at = :at"),
            {"at": OLD},
        )
    assert await _ids(database, "relay_attempts") == {"m_sent"}
    assert await retention.prune(database, 30) == 1
    assert await _ids(database, "relay_attempts") == set()


async def test_pruning_walks_seq_ranges_and_audits_each_range_that_deleted(
    relay_gateway: Gateway,
) -> None:
    database = relay_gateway.runtime.database
    await _endpoints(database)
    for n in range(7):
        await _message(database, f"m{n}", [("ep_on", DELIVERED, OLD)])

    assert await retention.prune(database, 30, now=NOW, range_seqs=3) == 7
    assert await retention.prune(database, 30, now=NOW, range_seqs=3) == 0

    assert [a["detail"]["messages"] for a in await _audits(database)] == [3, 3, 1]


async def test_pruning_stops_at_the_first_range_younger_than_the_cut_off(
    relay_gateway: Gateway,
) -> None:
    database = relay_gateway.runtime.database
    await _message(database, "old", [])
    for n in range(4):
        await _message(database, f"young{n}", [], received_at=NOW - DAY)
    # Seqs grow with time: an old message after young ones does not happen in use; here it
    # shows that the walk ends at the first young range instead of reading on.
    await _message(database, "after_young", [])

    assert await retention.prune(database, 30, now=NOW, range_seqs=2) == 1
    assert "after_young" in await _ids(database, "relay_messages")


async def test_workers_pruning_at_once_delete_each_message_once(relay_gateway: Gateway) -> None:
    database = relay_gateway.runtime.database
    await _endpoints(database)
    for n in range(30):
        await _message(database, f"m{n}", [("ep_on", DELIVERED, OLD), ("ep_off", FAILED, OLD)])

    counts = await asyncio.gather(
        *(retention.prune(database, 30, now=NOW, range_seqs=4) for _ in range(3))
    )

    assert sum(counts) == 30
    assert sum(a["detail"]["messages"] for a in await _audits(database)) == 30
    assert await _ids(database, "relay_attempts") == set()


async def test_a_redelivery_or_recovery_in_flight_keeps_its_message(
    relay_gateway: Gateway,
) -> None:
    database = relay_gateway.runtime.database
    if not database.is_postgres:
        pytest.skip("row locks: on SQLite the prune waits for the one writer to commit")
    await _endpoints(database)
    await _message(database, "m_unsubscribed", [])
    await _message(database, "m_given_up", [("ep_off", FAILED, OLD)])
    await _message(database, "m_done", [("ep_on", DELIVERED, OLD)])
    async with database.engine.connect() as other:
        await other.begin()
        # An operator's requests, not committed yet when the prune runs.
        assert await messages.redeliver(other, "m_unsubscribed", "ep_on") == ["ep_on"]
        await other.execute(text("UPDATE relay_endpoints SET enabled = true WHERE id = 'ep_off'"))
        since = datetime.fromtimestamp(OLD - DAY, UTC)
        assert await messages.recover(other, "ep_off", since) == ["m_given_up"]

        pruned = await asyncio.wait_for(retention.prune(database, 30, now=NOW), timeout=5)

        await other.commit()
    assert pruned == 1
    assert await _ids(database, "relay_messages") == {"m_unsubscribed", "m_given_up"}
    assert await _ids(database, "relay_deliveries") == {"m_unsubscribed", "m_given_up"}
    assert await retention.prune(database, 30, now=NOW) == 0  # both pending again


async def test_the_job_runs_in_every_worker_and_stops_when_asked(relay_gateway: Gateway) -> None:
    assert worker.job_function("relay.retention") is retention.run
    assert relay_gateway.runtime.settings.webhook_retention_days == 30
    database = relay_gateway.runtime.database
    await _message(database, "m_old", [], received_at=NOW - 31 * DAY)
    stop = asyncio.Event()
    job = asyncio.create_task(retention.run(relay_gateway.runtime, stop))
    for _ in range(250):
        if not await _ids(database, "relay_messages"):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(job, timeout=5)
    assert await _ids(database, "relay_messages") == set()
