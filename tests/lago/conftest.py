"""Fixtures for the Lago emulator's own tests: a fresh state and an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lago.emulator import EmulatorState, create_app
from lago.emulator.contract import load_spec, missing_spec_reason, spec_required

API_KEY = "test-lago-key"


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState(api_url="http://lago.test")


def client_for(app: Any, api_key: str = API_KEY) -> httpx.AsyncClient:
    """An httpx client talking to ``app`` in-process, authenticated with ``api_key``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://lago.test/api/v1",
        headers={"Authorization": f"Bearer {api_key}"},
    )


@pytest.fixture
def make_client() -> Any:
    """``client_for`` as a fixture (test modules here are not a package)."""
    return client_for


@pytest_asyncio.fixture
async def lago(state: EmulatorState) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(state, api_key=API_KEY)) as client:
        yield client


@pytest.fixture
def require_spec() -> None:
    """Skip (or, with GATEWAY_REQUIRE_LAGO_SPEC=1, fail) when the OpenAPI spec is absent."""
    if load_spec() is None:
        if spec_required():
            pytest.fail(missing_spec_reason())
        pytest.skip(missing_spec_reason())


@pytest_asyncio.fixture
async def catalog(lago: httpx.AsyncClient) -> dict[str, str]:
    """Metric lago_ids by code, after ``create_catalog``."""
    return await create_catalog(lago)


@pytest.fixture
def catalog_factory() -> Any:
    """``create_catalog`` as a fixture, for clients other than ``lago``."""
    return create_catalog


async def create_catalog(client: httpx.AsyncClient) -> dict[str, str]:
    """Metrics ``tokens`` (sum) and ``calls`` (count); plans ``basic`` (10 $), ``pro`` (50 $)."""
    tokens = await client.post(
        "/billable_metrics",
        json={
            "billable_metric": {
                "name": "Tokens",
                "code": "tokens",
                "aggregation_type": "sum_agg",
                "field_name": "tokens",
            }
        },
    )
    calls = await client.post(
        "/billable_metrics",
        json={
            "billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}
        },
    )
    metric_ids = {
        "tokens": tokens.json()["billable_metric"]["lago_id"],
        "calls": calls.json()["billable_metric"]["lago_id"],
    }
    for code, amount in (("basic", 1000), ("pro", 5000)):
        response = await client.post("/plans", json={"plan": _plan(code, amount, metric_ids)})
        assert response.status_code == 200, response.text
    return metric_ids


def _plan(code: str, amount: int, metric_ids: dict[str, str]) -> dict[str, Any]:
    return {
        "name": code.title(),
        "code": code,
        "interval": "monthly",
        "amount_cents": amount,
        "amount_currency": "USD",
        "pay_in_advance": False,
        "charges": [
            {
                "billable_metric_id": metric_ids["tokens"],
                "charge_model": "standard",
                "properties": {"amount": "0.01"},
            },
            {
                "billable_metric_id": metric_ids["calls"],
                "charge_model": "graduated",
                "properties": {
                    "graduated_ranges": [
                        {
                            "from_value": 0,
                            "to_value": 10,
                            "per_unit_amount": "0",
                            "flat_amount": "0",
                        },
                        {
                            "from_value": 11,
                            "to_value": None,
                            "per_unit_amount": "0.5",
                            "flat_amount": "1",
                        },
                    ]
                },
            },
        ],
    }
