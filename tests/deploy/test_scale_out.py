"""Scale-out: two API processes and two worker processes on one PostgreSQL database.

Real processes (``gateway serve --no-worker`` twice, ``gateway worker`` twice, the Lago
emulator as ``python -m lago.emulator``) take a mixed load through both API processes:
customers and subscriptions, usage events in concurrent batches with resends, and signed Lago
webhooks with resends. Then every event is in Lago exactly once (no event reached Lago twice),
both workers forwarded, and every relay message reached each subscriber endpoint exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from gateway.auth.service import create_key
from gateway.db import Database
from tests.support.cluster import HMAC_KEY, Cluster, Subscriber, wait_for_log, wait_until_up

pytestmark = pytest.mark.slow

SUBSCRIPTIONS = 8
EVENTS_PER_SUBSCRIPTION = 150
BATCH = 25
WEBHOOKS = 30
DEADLINE_SECONDS = 40.0


@pytest.fixture
def cluster(backend: str, database_url: str, tmp_path: Path) -> Iterator[Cluster]:
    if backend != "postgres":
        pytest.skip("several processes share one database on PostgreSQL only (SKIP LOCKED)")
    overrides = {
        "GATEWAY_FORWARD_BACKOFF_MAX_SECONDS": "1",
        "GATEWAY_API_KEY_CACHE_SECONDS": "0",
        # Small claims (4 batches of 20 a loop, one loop): one worker alone cannot take the
        # whole outbox in its first round, so both share it, as they would under real load.
        "GATEWAY_FORWARD_BATCH_SIZE": "20",
        "GATEWAY_FORWARD_CONCURRENCY": "1",
    }
    cluster = Cluster(tmp_path, database_url, overrides)
    try:
        yield cluster
    finally:
        cluster.stop()


def _lago_webhook(index: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "webhook_type": "customer.updated",
            "object_type": "customer",
            "organization_id": "org_1",
            "customer": {"lago_id": f"lago_cust_{index}", "external_id": f"cust_{index}"},
        },
        separators=(",", ":"),
    ).encode()
    signature = base64.b64encode(hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).digest())
    headers = {
        "Content-Type": "application/json",
        "X-Lago-Signature": signature.decode(),
        "X-Lago-Signature-Algorithm": "hmac",
        "X-Lago-Unique-Key": f"uk_{index}",
    }
    return body, headers


async def _post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    response = await client.post(url, **kwargs)
    assert response.status_code < 300, f"{url}: {response.status_code} {response.text[:300]}"
    return response


async def _customers(clients: list[httpx.AsyncClient]) -> None:
    for index, client in zip(range(SUBSCRIPTIONS), itertools.cycle(clients), strict=False):
        customer = {"external_id": f"cust_{index}", "name": f"Customer {index}"}
        await _post(client, "/api/v1/customers", json={"customer": customer})
        subscription = {
            "external_customer_id": f"cust_{index}",
            "plan_code": "basic_monthly",
            "external_id": f"sub_{index}",
        }
        await _post(client, "/api/v1/subscriptions", json={"subscription": subscription})


def _batches() -> list[list[dict[str, Any]]]:
    now = int(time.time())
    events = [
        {
            "transaction_id": f"tx_{sub}_{n}",
            "external_subscription_id": f"sub_{sub}",
            "code": "photo_generation",
            "timestamp": now,
            "properties": {"quality": "sd"},
        }
        for sub in range(SUBSCRIPTIONS)
        for n in range(EVENTS_PER_SUBSCRIPTION)
    ]
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


async def _events(clients: list[httpx.AsyncClient], producers: int = 6) -> int:
    batches = _batches()
    queue: asyncio.Queue[tuple[int, list[dict[str, Any]]]] = asyncio.Queue()
    for index, batch in enumerate(batches):
        queue.put_nowait((index, batch))

    async def produce(worker: int) -> None:
        while not queue.empty():
            index, batch = queue.get_nowait()
            client = clients[(index + worker) % len(clients)]
            await _post(client, "/api/v1/events/batch", json={"events": batch})
            if index % 10 == 0:  # a resend, through the other process
                other = clients[(index + worker + 1) % len(clients)]
                await _post(other, "/api/v1/events/batch", json={"events": batch})

    await asyncio.gather(*(produce(worker) for worker in range(producers)))
    return sum(len(batch) for batch in batches)


async def _webhooks(clients: list[httpx.AsyncClient]) -> None:
    for index in range(WEBHOOKS):
        body, headers = _lago_webhook(index)
        await _post(clients[index % 2], "/gateway/webhooks/lago", content=body, headers=headers)
        if index % 5 == 0:  # Lago retrying the same webhook, to the other process
            await _post(
                clients[(index + 1) % 2], "/gateway/webhooks/lago", content=body, headers=headers
            )


async def _message_ids(client: httpx.AsyncClient) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/gateway/messages", params=params)).json()
        ids |= {message["id"] for message in page["messages"]}
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def admin_key(database_url: str) -> str:
    database = Database(database_url)
    try:
        async with database.session() as session:
            key = await create_key(session, "ops", ["admin"])
            await session.commit()
    finally:
        await database.dispose()
    return key


def _forwarding_actors(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT actor FROM audit_entries WHERE action = 'usage.forward' "
            "AND outcome = 'forwarded'"
        ).fetchall()
    return {row[0] for row in rows}


async def test_two_api_and_two_worker_processes_forward_and_relay_exactly_once(
    cluster: Cluster, database_url: str
) -> None:
    emulator = cluster.start_emulator()
    apis = [cluster.start_api("api-1"), cluster.start_api("api-2")]
    workers = [cluster.start_worker("worker-1"), cluster.start_worker("worker-2")]
    cluster.cli("catalog", "apply")  # while the gateway processes start
    key = await admin_key(database_url)
    for api in apis:
        wait_until_up(api, "/healthz")
    # Both workers running, and Lago slow enough that neither drains the outbox alone
    # before the other claims: the test is about two forwarders sharing one database.
    for worker in workers:
        wait_for_log(worker, "worker.started")
    httpx.post(f"{emulator.url}/_emulator/faults", json={"latency": 0.05}, timeout=10)

    auth = {"Authorization": f"Bearer {key}"}
    with Subscriber() as subscriber:
        clients = [
            httpx.AsyncClient(base_url=api.url or "", headers=auth, timeout=30) for api in apis
        ]
        lago = httpx.AsyncClient(base_url=emulator.url or "", timeout=10)
        try:
            for path in ("/a", "/b"):
                endpoint = {"url": f"{subscriber.url}{path}", "filter_types": ["*"]}
                await _post(clients[0], "/gateway/endpoints", json=endpoint)
            await _customers(clients)
            sent, _ = await asyncio.gather(_events(clients), _webhooks(clients))

            async def forwarded() -> bool:
                stats = (await lago.get("/_emulator/stats")).json()
                return bool(stats["events_stored"] >= sent)

            await _until(forwarded, "every event in Lago")
            messages: set[str] = set()

            async def handled() -> bool:
                messages.update(await _message_ids(clients[0]))
                return len(messages) >= WEBHOOKS

            await _until(handled, "every webhook handled into a relay message")

            async def relayed() -> bool:
                return len(subscriber.snapshot()) >= 2 * len(messages)

            await _until(relayed, "every relay message at both endpoints")
            await asyncio.sleep(1.0)  # anything sent twice would arrive by now
            stats = (await lago.get("/_emulator/stats")).json()
        finally:
            for client in (*clients, lago):
                await client.aclose()
        deliveries = subscriber.snapshot()

    assert all(worker.alive() for worker in workers), "a worker died"
    assert stats["events_stored"] == sent == SUBSCRIPTIONS * EVENTS_PER_SUBSCRIPTION
    assert stats["duplicate_rejections"] == 0, "an event reached Lago twice"
    assert len(_forwarding_actors(database_url)) == 2, "both workers should have forwarded"
    for path in ("/a", "/b"):
        assert {wid for (p, wid) in deliveries if p == path} == messages
    assert set(deliveries.values()) == {1}, "a relay message was delivered twice"
