"""Billable metrics and plans, keyed by code."""

from __future__ import annotations

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = pytest.mark.asyncio


async def test_metric_crud(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    created = await lago.post(
        "/billable_metrics",
        json={
            "billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}
        },
    )
    renamed = await lago.put("/billable_metrics/calls", json={"billable_metric": {"name": "API"}})
    listed = await lago.get("/billable_metrics")
    deleted = await lago.delete("/billable_metrics/calls")

    assert created.status_code == 200
    assert renamed.json()["billable_metric"]["name"] == "API"
    assert listed.json()["meta"]["total_count"] == 1
    assert deleted.status_code == 200
    assert state.billable_metrics == {}
    assert (await lago.get("/billable_metrics/calls")).json()["code"] == "billable_metric_not_found"


async def test_metric_code_is_unique(lago: httpx.AsyncClient) -> None:
    body = {"billable_metric": {"name": "C", "code": "c", "aggregation_type": "count_agg"}}
    await lago.post("/billable_metrics", json=body)

    response = await lago.post("/billable_metrics", json=body)

    assert response.status_code == 422
    assert response.json()["error_details"] == {"code": ["value_already_exist"]}


async def test_sum_metric_needs_a_field_name(lago: httpx.AsyncClient) -> None:
    response = await lago.post(
        "/billable_metrics",
        json={"billable_metric": {"name": "T", "code": "t", "aggregation_type": "sum_agg"}},
    )

    assert response.json()["error_details"] == {"field_name": ["value_is_mandatory"]}


async def test_plan_charges_reference_metrics(
    lago: httpx.AsyncClient, catalog: dict[str, str]
) -> None:
    plan = (await lago.get("/plans/pro")).json()["plan"]

    charge = plan["charges"][0]
    assert charge["lago_billable_metric_id"] == catalog["tokens"]
    assert charge["billable_metric_code"] == "tokens"
    assert charge["charge_model"] == "standard"
    assert charge["lago_id"]


async def test_plan_with_unknown_metric_is_404(lago: httpx.AsyncClient) -> None:
    response = await lago.post(
        "/plans",
        json={
            "plan": {
                "name": "X",
                "code": "x",
                "interval": "monthly",
                "amount_cents": 0,
                "amount_currency": "USD",
                "charges": [{"billable_metric_id": "nope", "charge_model": "standard"}],
            }
        },
    )

    assert response.status_code == 404
    assert response.json()["code"] == "billable_metrics_not_found"


async def test_plan_update_and_delete(
    lago: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    updated = await lago.put("/plans/pro", json={"plan": {"amount_cents": 9900}})
    deleted = await lago.delete("/plans/basic")

    assert updated.json()["plan"]["amount_cents"] == 9900
    assert len(updated.json()["plan"]["charges"]) == 2
    assert deleted.status_code == 200
    assert list(state.plans) == ["pro"]
    assert (await lago.get("/plans")).json()["meta"]["total_count"] == 1
