"""Injected faults are decided before the handler: a faulted request changes nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from lago.emulator import EmulatorState, Faults, create_app

pytestmark = pytest.mark.asyncio

EVENT = {"event": {"transaction_id": "tx1", "external_subscription_id": "s", "code": "c"}}
CUSTOMER = {"customer": {"external_id": "acme"}}


async def test_error_rate_answers_500_and_stores_nothing(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.error_rate = 1.0

    response = await lago.post("/events", json=EVENT)
    customer = await lago.post("/customers", json=CUSTOMER)

    assert response.status_code == 500
    assert response.json() == {"status": 500, "error": "Internal Server Error"}
    assert customer.status_code == 500
    assert state.events == {}
    assert state.customers == {}
    assert state.event_requests == 0
    assert state.faults_injected["error"] == 2


async def test_rate_limit_answers_429_with_retry_after(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.rate_limit_rate = 1.0
    state.faults.retry_after_seconds = 7

    response = await lago.post("/events", json=EVENT)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.headers["X-RateLimit-Reset"] == "7"
    assert state.events == {}


async def test_latency_delays_every_request(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    state.faults.latency = 0.1

    started = time.monotonic()
    response = await lago.post("/events", json=EVENT)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.1


async def test_timeout_hangs_so_the_client_timeout_fires(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.timeout_rate = 1.0
    state.faults.hang_seconds = 5

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(lago.post("/events", json=EVENT), timeout=0.1)
    assert state.events == {}


async def test_a_hang_shorter_than_the_client_timeout_ends_in_504(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.timeout_rate = 1.0
    state.faults.hang_seconds = 0.05

    response = await lago.post("/events", json=EVENT)

    assert response.status_code == 504
    assert state.events == {}


async def test_outage_answers_503_until_it_ends(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.outage(0.2)

    during = await lago.post("/events", json=EVENT)
    await asyncio.sleep(0.25)
    after = await lago.post("/events", json=EVENT)

    assert during.status_code == 503
    assert during.headers["Retry-After"] == "1"
    assert after.status_code == 200
    assert len(state.events) == 1


async def test_fail_after_commit_stores_then_answers_500(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.fail_after_commit_rate = 1.0

    response = await lago.post("/events", json=EVENT)
    state.faults.fail_after_commit_rate = 0.0
    retry = await lago.post("/events", json=EVENT)

    assert response.status_code == 500
    assert ("s", "tx1") in state.events
    assert retry.status_code == 422
    assert retry.json()["error_details"] == {"transaction_id": ["value_already_exist"]}


async def test_seeded_faults_repeat_exactly() -> None:
    def draws(seed: int) -> list[str]:
        faults = Faults(error_rate=0.3, rate_limit_rate=0.2, seed=seed)
        return [faults.draw().value for _ in range(50)]

    assert draws(42) == draws(42)
    assert {"error", "rate_limit", "none"} == set(draws(42))


async def test_fault_rates_are_shares_of_requests() -> None:
    faults = Faults(error_rate=0.25, seed=1)

    errors = sum(faults.draw().value == "error" for _ in range(4000))

    assert 800 < errors < 1200


async def test_faults_spare_health_and_control_endpoints(
    state: EmulatorState, make_client: Any
) -> None:
    state.faults.error_rate = 1.0
    async with make_client(create_app(state)) as client:
        health = await client.get("http://lago.test/health")
        stats = await client.get("http://lago.test/_emulator/stats")

    assert health.status_code == 200
    assert stats.status_code == 200


async def test_requests_are_counted_by_status(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await lago.post("/events", json=EVENT)
    await lago.post("/events", json=EVENT)
    state.faults.error_rate = 1.0
    await lago.post("/events", json=EVENT)

    assert state.requests_by_status == {200: 1, 422: 1, 500: 1}


async def test_faults_and_auth_apply_when_mounted_under_a_prefix(
    state: EmulatorState, make_client: Any
) -> None:
    host = Starlette(routes=[Mount("/lago", app=create_app(state, api_key="test-lago-key"))])
    async with make_client(host) as client:
        stored = await client.post("http://lago.test/lago/api/v1/events", json=EVENT)
        unauthorized = await client.get(
            "http://lago.test/lago/api/v1/customers", headers={"Authorization": "Bearer no"}
        )
        state.faults.error_rate = 1.0
        faulted = await client.post("http://lago.test/lago/api/v1/events", json=EVENT)

    assert stored.status_code == 200
    assert unauthorized.status_code == 401
    assert faulted.status_code == 500
