"""Exactly once under faults: Lago failing, rate limiting, timing out and down, producers
resending."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from lago.emulator.clock import iso_ms
from tests.conftest import Gateway, make_settings, start_gateway
from tests.usage.servers import LAGO_KEY, METRIC, lago_client, seed_lago, serve_in_thread, wait_for

N_EVENTS = 2000
PRODUCERS = 8
SUBSCRIPTIONS = [f"sub_{i}" for i in range(10)]


def _events(producer: int, count: int) -> list[dict[str, Any]]:
    events = []
    for i in range(count):
        event: dict[str, Any] = {
            "transaction_id": f"p{producer}-tx{i}",
            "external_subscription_id": SUBSCRIPTIONS[i % len(SUBSCRIPTIONS)],
            "code": METRIC,
            "properties": {"model": "flux", "seconds": i % 5 + 1},
        }
        if i % 4:  # every fourth event leaves the timestamp to the gateway
            event["timestamp"] = 1756684800 + producer * 10_000 + i
        events.append(event)
    return events


async def _produce(gw: Gateway, headers: dict[str, str], producer: int, seed: int) -> None:
    """Send every event once, in batches and singly, then resend a tenth of them identically."""
    rng = random.Random(seed)
    events = _events(producer, N_EVENTS // PRODUCERS)
    resends = rng.sample(events, len(events) // 10)
    queue = list(events)
    while queue:
        size = rng.choice([1, 1, 7, 25, 60])
        chunk, queue = queue[:size], queue[size:]
        if rng.random() < 0.3 and resends:
            chunk = [*chunk, resends.pop()]
        await _send(gw, headers, chunk)
        await asyncio.sleep(rng.random() * 0.15)  # spread over the faults
    for event in resends:
        await _send(gw, headers, [event])


async def _send(gw: Gateway, headers: dict[str, str], chunk: list[dict[str, Any]]) -> None:
    if len(chunk) == 1:
        response = await gw.client.post("/api/v1/events", json={"event": chunk[0]}, headers=headers)
    else:
        response = await gw.client.post(
            "/api/v1/events/batch", json={"events": chunk}, headers=headers
        )
    assert response.status_code == 200, response.text


async def _misbehave(state: EmulatorState) -> None:
    """Lago gets worse and better while the producers send; every fault kind shows up."""
    faults = state.faults
    faults.reseed(7)
    faults.configure(
        {"error_rate": 0.3, "rate_limit_rate": 0.03, "timeout_rate": 0.1, "hang_seconds": 0.1}
    )
    await asyncio.sleep(0.8)
    faults.hang_seconds = 0.8  # now longer than the gateway's 0.3 s timeout
    await asyncio.sleep(0.8)
    faults.fail_after_commit_rate = 0.3  # Lago stores the batch, the answer is lost
    await asyncio.sleep(1.0)
    faults.outage(1.0)
    await asyncio.sleep(1.2)
    faults.latency = 0.4  # every answer comes after the timeout; Lago still stores the events
    await asyncio.sleep(0.8)
    faults.clear()


async def _outbox_counts(gw: Gateway) -> dict[str, int]:
    async with gw.runtime.database.engine.connect() as conn:
        rows = await conn.execute(text("SELECT status, count(*) FROM usage_events GROUP BY status"))
        return {status: int(count) for status, count in rows.all()}


async def test_every_event_reaches_lago_exactly_once_through_failures_outage_and_resends(
    database_url: str,
) -> None:
    state = EmulatorState()
    lago_app = create_emulator(state, api_key=LAGO_KEY, validate=True)
    with serve_in_thread(lago_app) as lago:
        async with lago_client(lago.url) as client:
            await seed_lago(client, SUBSCRIPTIONS)
        settings = make_settings(
            database_url,
            lago_api_url=lago.url,
            lago_timeout_seconds=0.3,
            forward_batch_size=25,
            forward_backoff_max_seconds=0.3,
        )
        gw, manager = await start_gateway(
            settings, state, run_workers=True, lago_transport=httpx.AsyncHTTPTransport()
        )
        try:
            headers = await gw.headers("events:write")
            await asyncio.gather(
                _misbehave(state), *(_produce(gw, headers, p, p) for p in range(PRODUCERS))
            )

            async def drained() -> bool:
                return (await _outbox_counts(gw)).get("pending", 0) == 0

            started = time.monotonic()
            await wait_for(drained, 15, "the outbox to drain", interval=0.1)
            counts = await _outbox_counts(gw)
            async with gw.runtime.database.engine.connect() as conn:
                stored = (await conn.execute(text("SELECT payload FROM usage_events"))).all()
        finally:
            await gw.client.aclose()
            await manager.__aexit__(None, None, None)

    assert counts == {"forwarded": N_EVENTS}, counts
    expected = {
        (e["external_subscription_id"], e["transaction_id"])
        for p in range(PRODUCERS)
        for e in _events(p, N_EVENTS // PRODUCERS)
    }
    assert len(state.events) == N_EVENTS
    assert set(state.events) == expected
    # Every attempt carried the payload stored at acceptance: Lago kept the stamped timestamps.
    for (payload,) in stored:
        event = orjson.loads(payload)
        lago_event = state.events[(event["external_subscription_id"], event["transaction_id"])]
        assert lago_event["timestamp"] == iso_ms(float(event["timestamp"]))
    injected = state.faults_injected
    assert injected["error"] and injected["outage"] and injected["timeout"], injected
    assert state.contract_violations == []
    assert time.monotonic() - started < 15
