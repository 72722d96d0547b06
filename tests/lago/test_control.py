"""Control endpoints under /_emulator, for an emulator running in its own process."""

from __future__ import annotations

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = pytest.mark.asyncio

ROOT = "http://lago.test"
EVENTS = {
    "events": [
        {"transaction_id": f"t{i}", "external_subscription_id": "s", "code": "c"} for i in range(3)
    ]
}


async def test_stats_count_events_duplicates_and_statuses(lago: httpx.AsyncClient) -> None:
    await lago.post("/events/batch", json=EVENTS)
    await lago.post("/events/batch", json=EVENTS)

    stats = (await lago.get(f"{ROOT}/_emulator/stats")).json()

    assert stats["events_stored"] == 3
    assert stats["duplicate_rejections"] == 3
    assert stats["event_requests"] == 2
    assert stats["requests_by_status"] == {"200": 1, "422": 1}


async def test_faults_endpoint_sets_fields_and_starts_an_outage(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    response = await lago.post(
        f"{ROOT}/_emulator/faults",
        json={"error_rate": 0.5, "retry_after_seconds": 3, "outage_seconds": 30, "seed": 9},
    )

    assert response.status_code == 200
    assert state.faults.error_rate == 0.5
    assert state.faults.retry_after_seconds == 3
    assert state.faults.seed == 9
    assert (await lago.get("/customers")).status_code == 503
    cleared = await lago.post(f"{ROOT}/_emulator/faults", json={"clear": True})
    assert cleared.json()["faults"]["error_rate"] == 0.0
    assert (await lago.get("/customers")).status_code == 200


async def test_faults_endpoint_rejects_unknown_settings(lago: httpx.AsyncClient) -> None:
    response = await lago.post(f"{ROOT}/_emulator/faults", json={"eror_rate": 1})

    assert response.status_code == 400
    assert "eror_rate" in response.json()["error"]


async def test_reset_forgets_everything(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    await lago.post("/events/batch", json=EVENTS)
    state.faults.latency = 0.01

    await lago.post(f"{ROOT}/_emulator/reset")

    assert state.events == {}
    assert state.event_requests == 0
    assert state.faults.latency == 0.0
    assert state.requests_by_status == {}


async def test_events_endpoint_lists_stored_events_up_to_limit(lago: httpx.AsyncClient) -> None:
    await lago.post("/events/batch", json=EVENTS)

    body = (await lago.get(f"{ROOT}/_emulator/events", params={"limit": 2})).json()

    assert body["total"] == 3
    assert [e["transaction_id"] for e in body["events"]] == ["t0", "t1"]
    params = {"limit": 5, "only": "transaction_id"}
    ids = (await lago.get(f"{ROOT}/_emulator/events", params=params)).json()
    assert ids == {"transaction_ids": ["t0", "t1", "t2"], "total": 3}
