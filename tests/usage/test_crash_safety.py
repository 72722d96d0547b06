"""Forwarder processes killed with SIGKILL, and two forwarders on one database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.db import Database
from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway
from tests.usage.servers import (
    METRIC,
    lago_client,
    seed_lago,
    spawn_emulator,
    spawn_worker,
    wait_for,
    worker_env,
)

SUBSCRIPTIONS = [f"sub_{i}" for i in range(5)]


async def _accept(database_url: str, lago_url: str, count: int) -> set[tuple[str, str]]:
    """Store ``count`` events through the gateway's API (no forwarder running)."""
    settings = make_settings(database_url, lago_api_url=lago_url)
    gw, manager = await start_gateway(
        settings, EmulatorState(), lago_transport=httpx.AsyncHTTPTransport()
    )
    keys: set[tuple[str, str]] = set()
    try:
        headers = await gw.headers("events:write")
        for start in range(0, count, 100):
            events = [_event(i) for i in range(start, min(count, start + 100))]
            keys |= {(e["external_subscription_id"], e["transaction_id"]) for e in events}
            await _post_batch(gw, headers, events)
    finally:
        await gw.client.aclose()
        await manager.__aexit__(None, None, None)
    return keys


def _event(i: int) -> dict[str, Any]:
    return {
        "transaction_id": f"tx-{i}",
        "external_subscription_id": SUBSCRIPTIONS[i % len(SUBSCRIPTIONS)],
        "code": METRIC,
        "timestamp": 1756684800 + i,
    }


async def _post_batch(gw: Gateway, headers: dict[str, str], events: list[dict[str, Any]]) -> None:
    response = await gw.client.post(
        "/api/v1/events/batch", json={"events": events}, headers=headers
    )
    assert response.status_code == 200, response.text


async def _stats(lago_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{lago_url}/_emulator/stats")
        data: dict[str, Any] = response.json()
        return data


async def _lago_keys(lago_url: str, limit: int) -> list[tuple[str, str]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{lago_url}/_emulator/events", params={"limit": limit + 10})
    return [(e["external_subscription_id"], e["transaction_id"]) for e in response.json()["events"]]


async def _status_counts(database_url: str) -> dict[str, int]:
    database = Database(database_url)
    try:
        async with database.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT status, count(*) FROM usage_events GROUP BY status")
            )
            return {status: int(n) for status, n in rows.all()}
    finally:
        await database.dispose()


async def _set_faults(lago_url: str, **faults: Any) -> None:
    async with httpx.AsyncClient() as client:
        (await client.post(f"{lago_url}/_emulator/faults", json=faults)).raise_for_status()


async def test_forwarder_killed_mid_batch_loses_and_duplicates_nothing_after_restart(
    database_url: str, tmp_path: Path
) -> None:
    n = 3000
    emulator, lago_url = spawn_emulator(tmp_path)
    workers = []
    try:
        async with lago_client(lago_url) as client:
            await seed_lago(client, SUBSCRIPTIONS)
        expected = await _accept(database_url, lago_url, n)
        await _set_faults(lago_url, latency=0.2)  # batches stay in flight long enough to cut
        env = worker_env(
            database_url,
            lago_url,
            forward_lease_seconds=2,
            lago_timeout_seconds=1,
            forward_backoff_max_seconds=0.5,
            forward_concurrency=1,  # 400 events a 0.2 s round: the kill lands mid-way
        )
        workers.append(spawn_worker(tmp_path, env, "worker-1"))

        async def some_forwarded() -> bool:
            return int((await _stats(lago_url))["events_stored"]) >= 500

        await wait_for(some_forwarded, 20, "the first worker to forward some events")
        workers[0].kill()  # SIGKILL: no cleanup, claimed batches stay leased
        stored_at_kill = int((await _stats(lago_url))["events_stored"])
        assert stored_at_kill < n, "the kill came too late to cut forwarding"
        await _set_faults(lago_url, latency=0.0)
        workers.append(spawn_worker(tmp_path, env, "worker-2"))

        async def drained() -> bool:
            return (await _status_counts(database_url)).get("pending", 0) == 0

        await wait_for(drained, 20, "the restarted worker to drain the outbox", interval=0.1)
        stats = await _stats(lago_url)
        lago_keys = await _lago_keys(lago_url, n)
    finally:
        for process in workers:
            process.kill()
        emulator.kill()
    assert await _status_counts(database_url) == {"forwarded": n}
    assert stats["events_stored"] == n
    assert len(lago_keys) == n and set(lago_keys) == expected


async def test_two_forwarder_processes_on_one_postgres_never_send_an_event_twice(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    if backend != "postgres":
        pytest.skip("FOR UPDATE SKIP LOCKED: several forwarder processes need PostgreSQL")
    n = 4000
    emulator, lago_url = spawn_emulator(tmp_path)
    workers = []
    try:
        async with lago_client(lago_url) as client:
            await seed_lago(client, SUBSCRIPTIONS)
        expected = await _accept(database_url, lago_url, n)
        # Batches of both processes overlap in time: one process alone needs about a second
        # (4 loops x 4 batches of 20 per 50 ms), four times the interval both probe Lago at.
        await _set_faults(lago_url, latency=0.05)
        env = worker_env(
            database_url,
            lago_url,
            forward_batch_size=20,
            forward_concurrency=4,
            forward_backoff_max_seconds=0.5,
            forward_probe_max_seconds=0.25,
        )

        async def both_up() -> bool:
            # Lago stays down (1 s at a time) until both processes have tried it: then
            # neither can drain the outbox alone before the other has started.
            await _set_faults(lago_url, outage_seconds=1)
            return len(await _forwarding_actors(database_url, "retry")) == 2

        workers = [spawn_worker(tmp_path, env, f"worker-{i}") for i in (1, 2)]
        await wait_for(both_up, 30, "both workers to start", interval=0.3)
        await _set_faults(lago_url, outage_seconds=0)

        async def drained() -> bool:
            return (await _status_counts(database_url)).get("pending", 0) == 0

        await wait_for(drained, 30, "two workers to drain the outbox", interval=0.1)
        stats = await _stats(lago_url)
        lago_keys = await _lago_keys(lago_url, n)
        actors = await _forwarding_actors(database_url)
    finally:
        for process in workers:
            process.kill()
        emulator.kill()
    assert stats["duplicate_rejections"] == 0, "an event was sent twice"
    assert stats["events_stored"] == n
    assert len(lago_keys) == n and set(lago_keys) == expected
    assert len(actors) == 2, f"both processes should have forwarded: {actors}"


async def _forwarding_actors(database_url: str, outcome: str = "forwarded") -> set[str]:
    database = Database(database_url)
    try:
        async with database.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT DISTINCT actor FROM audit_entries "
                    "WHERE action = 'usage.forward' AND outcome = :outcome"
                ),
                {"outcome": outcome},
            )
            return {row[0] for row in rows.all()}
    finally:
        await database.dispose()


async def test_events_are_stored_after_the_databases_connections_were_killed(
    backend: str, gateway: Gateway, database_url: str
) -> None:
    """The outbox writers keep their connections between commits; when PostgreSQL drops them
    (a restart, a failover), the next request is stored on a fresh connection, not refused."""
    if backend != "postgres":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    from tests.usage.test_ingest import _seed

    await _seed(gateway)
    headers = await gateway.headers("events:write")

    async def post(tx: str) -> int:
        event = {
            "transaction_id": tx,
            "external_subscription_id": "sub_1",
            "code": "photo_generation",
            "timestamp": 1756684800,
        }
        response = await gateway.client.post(
            "/api/v1/events", json={"event": event}, headers=headers
        )
        return response.status_code

    assert [await post(f"before-{i}") for i in range(5)] == [200] * 5
    admin = Database(database_url)
    try:
        async with admin.engine.connect() as conn:
            killed = (
                await conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar_one()
        assert killed >= 1
        assert [await post(f"after-{i}") for i in range(5)] == [200] * 5
        async with admin.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT count(*) FROM usage_events"))).scalar_one()
        assert stored == 10
    finally:
        await admin.dispose()
