"""Lago unwell as a whole: forwarding pauses without pushing events out, probes Lago, and is
fresh again at once when Lago answers; outages look as real ones do (a proxy's 502/503
without Retry-After, refused connections, requests left unanswered)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import text

from gateway.usage.forwarder import Forwarder
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from lago.emulator.transport import FaultyTransport
from tests.conftest import LAGO_KEY, Gateway, make_settings, start_gateway
from tests.usage.servers import METRIC, seed_through


@pytest.fixture
async def gw(database_url: str, emulator: EmulatorState) -> AsyncIterator[Gateway]:
    """Workers off (each test runs a forwarder of its own); Lago over a transport that can
    refuse connections and time out."""
    transport = FaultyTransport.for_app(create_emulator(emulator, api_key=LAGO_KEY, validate=True))
    settings = make_settings(database_url, lago_timeout_seconds=0.5, forward_backoff_max_seconds=30)
    gateway, manager = await start_gateway(settings, emulator, lago_transport=transport)
    try:
        await seed_through(gateway.runtime.lago, ["sub_1"])
        yield gateway
    finally:
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == []


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def _events(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "transaction_id": f"{prefix}-{i}",
            "external_subscription_id": "sub_1",
            "code": METRIC,
            "timestamp": 1756684800,
        }
        for i in range(count)
    ]


async def _accept(gw: Gateway, events: list[dict[str, Any]]) -> None:
    headers = await gw.headers("events:write")
    for start in range(0, len(events), 100):
        batch = {"events": events[start : start + 100]}
        response = await gw.client.post("/api/v1/events/batch", json=batch, headers=headers)
        assert response.status_code == 200, response.text


async def _pending(gw: Gateway) -> tuple[int, float]:
    """How many events wait, and the latest next attempt among them."""
    async with gw.runtime.database.engine.connect() as conn:
        count, latest = (
            await conn.execute(
                text(
                    "SELECT count(*), max(next_attempt_at) FROM usage_events "
                    "WHERE status = 'pending'"
                )
            )
        ).one()
    return int(count), float(latest or 0.0)


@pytest.mark.parametrize(
    ("kind", "status"),
    [("proxy", 503), ("proxy", 502), ("refuse", 503), ("hang", 503), ("lago", 503)],
)
async def test_an_outage_pauses_forwarding_and_lagos_return_drains_everything_at_once(
    gw: Gateway, kind: str, status: int
) -> None:
    forwarder = Forwarder(gw.runtime, gw.parts.lookups)
    stop = asyncio.Event()
    running = asyncio.create_task(forwarder.run(stop))
    try:
        await _accept(gw, _events("warm", 1))  # Lago known to the gateway's lookups
        await _until(lambda: len(gw.emulator.events) == 1, 5, "the first event")
        gw.emulator.faults.outage(3.0, kind=kind, status=status)
        await _accept(gw, _events("o", 300))
        await _until(lambda: not forwarder.health.well, 5, "forwarding to pause")
        await asyncio.sleep(1.0)
        faults_while_paused = sum(gw.emulator.faults_injected.values())
        pending, latest = await _pending(gw)
        assert pending == 300 and len(gw.emulator.events) == 1
        # Waiting for Lago pushed no event's next attempt out.
        assert latest <= time.time() + gw.runtime.settings.forward_lease_seconds
        await asyncio.sleep(max(0.0, gw.emulator.faults.outage_remaining()))
        returned = time.monotonic()
        await _until(lambda: len(gw.emulator.events) == 301, 10, "the backlog to drain")
        drained = time.monotonic() - returned
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    # A probe every 0.25 s doubling to 1 s, plus the batches that found the outage: no storm.
    assert faults_while_paused <= 4 * 3 + 12, gw.emulator.faults_injected
    assert drained < 3.0, f"{drained:.1f} s from Lago's return to an empty backlog"
    assert (await _pending(gw))[0] == 0
    assert forwarder.health.well and forwarder.health.probes >= 1


async def test_a_retry_after_is_honoured_before_the_next_probe(gw: Gateway) -> None:
    forwarder = Forwarder(gw.runtime, gw.parts.lookups)
    stop = asyncio.Event()
    running = asyncio.create_task(forwarder.run(stop))
    try:
        await _accept(gw, _events("warm", 1))
        await _until(lambda: len(gw.emulator.events) == 1, 5, "the first event")
        gw.emulator.faults.configure({"rate_limit_rate": 1.0, "retry_after_seconds": 2})
        await _accept(gw, _events("r", 10))
        await _until(lambda: not forwarder.health.well, 5, "forwarding to pause")
        paused_at = time.monotonic()
        gw.emulator.faults.clear()
        await _until(lambda: len(gw.emulator.events) == 11, 10, "the events to arrive")
        assert time.monotonic() - paused_at >= 1.8
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)


async def test_a_paused_forwarder_claims_nothing_and_the_probe_ends_the_pause(
    gw: Gateway,
) -> None:
    await _accept(gw, _events("p", 5))
    gw.emulator.faults.outage(60, kind="refuse")
    forwarder = Forwarder(gw.runtime, gw.parts.lookups)
    assert await forwarder.forward_due() == 5  # found the outage
    assert not forwarder.health.well and forwarder.health.reason is not None
    assert "unreachable" in forwarder.health.reason
    assert await forwarder.forward_due() == 0  # paused: nothing claimed, nothing sent
    gw.emulator.faults.outage(0)
    await asyncio.wait_for(forwarder.health.wait_well(asyncio.Event()), 5)
    assert await forwarder.forward_due() == 5
    assert len(gw.emulator.events) == 5
    await forwarder.health.close()
    body = (await gw.client.get("/metrics")).text
    assert "\ngateway_usage_forward_paused 0.0" in body
    assert "\ngateway_usage_forward_probes_total" in body
