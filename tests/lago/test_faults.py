"""Injected faults are decided before the handler: a faulted request changes nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from lago.emulator import ConnectionFault, EmulatorState, Fault, Faults, FaultyTransport, create_app

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


def faulty_client(app: Any, timeout: float = 5.0) -> httpx.AsyncClient:
    """A client whose transport fails like a network: refused, dropped, timed out."""
    return httpx.AsyncClient(
        transport=FaultyTransport.for_app(app),
        base_url="http://lago.test/api/v1",
        headers={"Authorization": "Bearer test-lago-key"},
        timeout=timeout,
    )


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_proxy_outage_answers_an_html_page_without_retry_after(
    lago: httpx.AsyncClient, state: EmulatorState, status: int
) -> None:
    state.faults.outage(60, kind="proxy", status=status)

    response = await lago.post("/events", json=EVENT)

    assert response.status_code == status
    assert "retry-after" not in response.headers
    assert response.headers["content-type"] == "text/html"
    assert response.headers["server"] == "nginx"
    assert f"<title>{status} " in response.text
    assert state.events == {}
    assert state.faults_injected["proxy_error"] == 1


async def test_proxy_error_rate_answers_502_pages(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.proxy_error_rate = 1.0

    response = await lago.post("/events", json=EVENT)

    assert response.status_code == 502
    assert response.text.startswith("<html>")
    assert "<title>502 Bad Gateway</title>" in response.text


async def test_lago_outage_keeps_its_json_503_with_retry_after(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.outage(5)

    response = await lago.post("/events", json=EVENT)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {"status": 503, "error": "Service Unavailable"}


async def test_refused_outage_raises_connect_error_through_faulty_transport(
    state: EmulatorState,
) -> None:
    state.faults.outage(60, kind="refuse")
    async with faulty_client(create_app(state, api_key="test-lago-key")) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("/events", json=EVENT)

    assert state.events == {}
    assert state.faults_injected["refuse"] == 1


async def test_reset_rate_raises_remote_protocol_error_through_faulty_transport(
    state: EmulatorState,
) -> None:
    state.faults.reset_rate = 1.0
    async with faulty_client(create_app(state, api_key="test-lago-key")) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/events", json=EVENT)

    assert state.events == {}


async def test_without_faulty_transport_a_dropped_connection_raises_connection_fault(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.refuse_rate = 1.0

    with pytest.raises(ConnectionFault) as raised:
        await lago.post("/events", json=EVENT)

    assert raised.value.fault is Fault.REFUSE


async def test_hang_outage_raises_read_timeout_at_the_clients_timeout(
    state: EmulatorState,
) -> None:
    state.faults.outage(60, kind="hang")
    started = time.monotonic()
    async with faulty_client(create_app(state, api_key="test-lago-key"), timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/events", json=EVENT)

    assert time.monotonic() - started < 2
    assert state.events == {}


async def test_a_slow_answer_times_out_but_lago_still_stores_the_event(
    state: EmulatorState,
) -> None:
    state.faults.latency = 0.2
    async with faulty_client(create_app(state, api_key="test-lago-key"), timeout=0.05) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/events", json=EVENT)
        await asyncio.sleep(0.3)

    assert ("s", "tx1") in state.events


async def test_faulty_transport_passes_healthy_requests_through(state: EmulatorState) -> None:
    async with faulty_client(create_app(state, api_key="test-lago-key")) as client:
        response = await client.post("/events", json=EVENT)

    assert response.status_code == 200
    assert ("s", "tx1") in state.events


async def test_body_over_max_body_bytes_is_413_from_the_proxy(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.max_body_bytes = 200
    batch = {"events": [{**EVENT["event"], "transaction_id": f"t{i}"} for i in range(10)]}

    small = await lago.post("/events", json=EVENT)
    large = await lago.post("/events/batch", json=batch)

    assert small.status_code == 200
    assert large.status_code == 413
    assert "<title>413 Request Entity Too Large</title>" in large.text
    assert large.headers["content-type"] == "text/html"
    assert len(state.events) == 1
    assert state.faults_injected["body_too_large"] == 1


async def test_body_limit_also_counts_a_chunked_body(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.max_body_bytes = 50

    async def chunks() -> Any:
        yield b'{"event": {"transaction_id": "tx1", '
        yield b'"external_subscription_id": "s", "code": "c"}}'

    response = await lago.post("/events", content=chunks())

    assert response.status_code == 413


async def test_body_within_limit_reaches_lago_when_chunked(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.max_body_bytes = 1000

    async def chunks() -> Any:
        yield b'{"event": {"transaction_id": "tx1", '
        yield b'"external_subscription_id": "s", "code": "c"}}'

    response = await lago.post("/events", content=chunks())

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"outage_seconds": 30, "outage_kind": "proxy", "outage_status": 502}, ("proxy", 502)),
        ({"outage_seconds": 30, "outage_kind": "refuse"}, ("refuse", 503)),
        ({"outage_seconds": 30}, ("lago", 503)),
    ],
)
async def test_control_endpoint_starts_outages_of_every_kind(
    state: EmulatorState, make_client: Any, settings: dict[str, Any], expected: tuple[str, int]
) -> None:
    async with make_client(create_app(state)) as client:
        response = await client.post("http://lago.test/_emulator/faults", json=settings)

    snapshot = response.json()["faults"]
    assert (snapshot["outage_kind"], snapshot["outage_status"]) == expected
    assert snapshot["outage_remaining_seconds"] > 29


async def test_control_endpoint_sets_new_rates_and_body_limit(
    state: EmulatorState, make_client: Any
) -> None:
    settings = {
        "proxy_error_rate": 0.5,
        "proxy_error_status": 504,
        "reset_rate": 0.1,
        "refuse_rate": 0.2,
        "max_body_bytes": 1048576,
    }
    async with make_client(create_app(state)) as client:
        response = await client.post("http://lago.test/_emulator/faults", json=settings)

    assert response.status_code == 200
    assert state.faults.max_body_bytes == 1048576
    assert state.faults.proxy_error_status == 504
    assert state.faults.refuse_rate == 0.2


@pytest.mark.parametrize(
    "settings",
    [{"outage_kind": "proxy"}, {"outage_seconds": 5, "outage_kind": "meltdown"}],
)
async def test_control_endpoint_refuses_bad_outage_settings(
    state: EmulatorState, make_client: Any, settings: dict[str, Any]
) -> None:
    async with make_client(create_app(state)) as client:
        response = await client.post("http://lago.test/_emulator/faults", json=settings)

    assert response.status_code == 400
    assert state.faults.outage_remaining() == 0


async def test_new_rates_leave_older_seeded_draws_unchanged() -> None:
    older = Faults(error_rate=0.3, seed=3)
    newer = Faults(error_rate=0.3, seed=3, proxy_error_rate=0.0, reset_rate=0.0)

    assert [older.draw() for _ in range(30)] == [newer.draw() for _ in range(30)]


async def test_clear_ends_every_new_fault(state: EmulatorState) -> None:
    state.faults.outage(60, kind="reset")
    state.faults.configure({"max_body_bytes": 10, "refuse_rate": 1.0})

    state.faults.clear()

    assert state.faults.draw() is Fault.NONE
    assert (state.faults.max_body_bytes, state.faults.outage_kind) == (0, "lago")


async def test_proxy_answers_are_not_counted_as_contract_violations(
    state: EmulatorState, require_spec: None
) -> None:
    app = create_app(state, api_key="test-lago-key", validate=True)
    async with faulty_client(app) as client:
        state.faults.outage(30, kind="proxy", status=502)
        proxied = await client.post("/events", json=EVENT)
        state.faults.clear()
        state.faults.max_body_bytes = 10
        too_large = await client.post("/events", json=EVENT)

    assert (proxied.status_code, too_large.status_code) == (502, 413)
    assert state.contract_violations == []
