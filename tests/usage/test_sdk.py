"""Lago's own Python SDK, pointed at the gateway over real HTTP, works unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.event import BatchEvent, Event
from sqlalchemy import text

from gateway.app import create_app
from gateway.auth.service import create_key
from gateway.db import Database
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from tests.conftest import make_settings
from tests.usage.servers import LAGO_KEY, METRIC, lago_client, seed_lago, serve_in_thread


def _mint_key(database_url: str) -> str:
    async def go() -> str:
        database = Database(database_url)
        try:
            async with database.session() as session:
                key = await create_key(session, "sdk", ["events:write"])
                await session.commit()
                return key
        finally:
            await database.dispose()

    return asyncio.run(go())


@pytest.fixture
def sdk(database_url: str) -> Iterator[tuple[Client, EmulatorState]]:
    """A Lago SDK client whose base URL is a gateway served over HTTP (Lago emulated behind)."""
    state = EmulatorState()
    with serve_in_thread(create_emulator(state, api_key=LAGO_KEY, validate=True)) as lago:

        async def seed() -> None:
            async with lago_client(lago.url) as client:
                await seed_lago(client, ["sub_1"])

        asyncio.run(seed())
        settings = make_settings(database_url, lago_api_url=lago.url)
        with serve_in_thread(create_app(settings)) as gateway:
            yield Client(api_key=_mint_key(database_url), api_url=gateway.url), state
    assert state.contract_violations == []


def _event(tx: str, **fields: object) -> Event:
    values: dict[str, object] = {
        "transaction_id": tx,
        "external_subscription_id": "sub_1",
        "code": METRIC,
        "timestamp": 1756684800,
        "properties": {"model": "flux", "seconds": 3},
    }
    values.update(fields)
    return Event(**values)


def test_lago_sdk_creates_one_event_through_the_gateway(
    sdk: tuple[Client, EmulatorState],
) -> None:
    client, _ = sdk
    created = client.events.create(_event("sdk-1"))
    assert created is not None
    assert created.transaction_id == "sdk-1"
    assert created.external_subscription_id == "sub_1"
    assert created.timestamp == "2025-09-01T00:00:00.000Z"
    assert created.properties == {"model": "flux", "seconds": 3}


def _stored_events(database_url: str) -> int:
    async def go() -> int:
        database = Database(database_url)
        try:
            async with database.engine.connect() as conn:
                count = await conn.execute(text("SELECT count(*) FROM usage_events"))
                return int(count.scalar_one())
        finally:
            await database.dispose()

    return asyncio.run(go())


def test_lago_sdk_creates_a_batch_and_resends_it_harmlessly(
    sdk: tuple[Client, EmulatorState], database_url: str
) -> None:
    client, _ = sdk
    batch = BatchEvent(events=[_event(f"sdk-b{i}", timestamp=None) for i in range(20)])
    client.events.batch_create(batch)
    client.events.batch_create(batch)  # an SDK retry: identical, so a success
    assert _stored_events(database_url) == 20


def test_lago_sdk_raises_lago_api_error_with_lagos_code_for_an_invalid_event(
    sdk: tuple[Client, EmulatorState],
) -> None:
    client, _ = sdk
    with pytest.raises(LagoApiError) as unknown_metric:
        client.events.create(_event("sdk-bad", code="no_such_metric"))
    assert unknown_metric.value.status_code == 422
    assert unknown_metric.value.response["code"] == "validation_errors"
    assert unknown_metric.value.response["error_details"] == {"code": ["billable_metric_not_found"]}
    client.events.create(_event("sdk-2"))
    with pytest.raises(LagoApiError) as clash:
        client.events.create(_event("sdk-2", properties={"model": "other"}))
    assert clash.value.response["error_details"] == {"transaction_id": ["value_already_exist"]}
    with pytest.raises(LagoApiError) as batch:
        client.events.batch_create(
            BatchEvent(events=[_event("sdk-3"), _event("sdk-4", timestamp="yesterday")])
        )
    assert batch.value.status_code == 422
    assert batch.value.response["error_details"] == {"1": {"timestamp": ["invalid_format"]}}
