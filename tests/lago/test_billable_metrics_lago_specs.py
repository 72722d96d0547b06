"""Lago's spec/requests/api/v1/billable_metrics_controller_spec.rb, ported to the emulator,
with the validations of app/models/billable_metric.rb and
app/services/billable_metrics/update_service.rb.

Each test names the ``describe``/``context``/``it`` it ports. Not ported: API key
permissions, expressions (``POST /billable_metrics/evaluate_expression``, ``expression``
checks), alerts, deleted metrics, custom aggregation.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = pytest.mark.asyncio

SUM = {"name": "BM1", "code": "BM1_code", "aggregation_type": "sum_agg", "field_name": "amount"}


async def create(lago: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await lago.post("/billable_metrics", json={"billable_metric": params})


async def created(lago: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await create(lago, **{**SUM, **params})
    assert response.status_code == 200, response.text
    metric: dict[str, Any] = response.json()["billable_metric"]
    return metric


async def update(lago: httpx.AsyncClient, path_code: str, **params: Any) -> httpx.Response:
    return await lago.put(f"/billable_metrics/{path_code}", json={"billable_metric": params})


async def test_create_a_billable_metric(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: POST /api/v1/billable_metrics, it "creates a
    billable_metric" (without its expression)."""
    params = {
        **SUM,
        "description": "description",
        "recurring": True,
        "rounding_function": "round",
        "rounding_precision": 2,
    }

    metric = await created(lago, **params)

    assert metric["lago_id"] and metric["created_at"]
    assert {key: metric[key] for key in params} == params
    assert metric["filters"] == []


async def test_create_a_weighted_sum_metric(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: POST, context "with weighted sum aggregation", it
    "creates a billable_metric"."""
    metric = await created(
        lago, aggregation_type="weighted_sum_agg", recurring=True, weighted_interval="seconds"
    )

    assert (metric["aggregation_type"], metric["weighted_interval"]) == (
        "weighted_sum_agg",
        "seconds",
    )
    assert metric["recurring"] is True


async def test_create_with_filters(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: POST, context "with filters", it "creates a
    billable_metric with filters"."""
    filters = [{"key": "key", "values": ["value1", "value2"]}]

    metric = await created(lago, aggregation_type="count_agg", field_name=None, filters=filters)

    assert metric["filters"] == filters


async def test_create_with_a_string_root_is_400(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: POST, context "with invalid input", it "returns
    bad_request error"."""
    response = await lago.post("/billable_metrics", json={"billable_metric": "BL"})

    assert response.status_code == 400
    assert response.json() == {
        "status": 400,
        "error": "BadRequest: param is missing or the value is empty or invalid: billable_metric",
    }


async def test_every_failed_validation_is_reported(lago: httpx.AsyncClient) -> None:
    """BillableMetric validations: blank ``name``, ``field_name`` and ``code`` are
    ``value_is_mandatory``, an unknown ``aggregation_type`` is ``value_is_invalid``."""
    response = await create(lago, name="", aggregation_type="median_agg")

    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "name": ["value_is_mandatory"],
        "field_name": ["value_is_mandatory"],
        "aggregation_type": ["value_is_invalid"],
        "code": ["value_is_mandatory"],
    }


@pytest.mark.parametrize("kind", ["count_agg", "max_agg", "latest_agg"])
async def test_recurring_is_refused_for_count_max_and_latest(
    lago: httpx.AsyncClient, kind: str
) -> None:
    """BillableMetric#validate_recurring: ``not_compatible_with_aggregation_type``."""
    response = await create(lago, **{**SUM, "aggregation_type": kind, "recurring": True})

    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "recurring": ["not_compatible_with_aggregation_type"]
    }


async def test_weighted_sum_needs_weighted_interval(lago: httpx.AsyncClient) -> None:
    """BillableMetric: ``weighted_interval`` inclusion ``if: :weighted_sum_agg?``."""
    response = await create(lago, **{**SUM, "aggregation_type": "weighted_sum_agg"})

    assert response.status_code == 422
    assert response.json()["error_details"] == {"weighted_interval": ["value_is_invalid"]}


async def test_count_agg_drops_its_field_name(lago: httpx.AsyncClient) -> None:
    """BillableMetric#reset_field_name_for_count_agg."""
    metric = await created(lago, aggregation_type="count_agg", field_name="amount")

    assert metric["field_name"] is None


async def test_a_taken_code_is_value_already_exist(lago: httpx.AsyncClient) -> None:
    """BillableMetric: ``code`` uniqueness in the organization."""
    await created(lago)

    response = await create(lago, **SUM)

    assert response.status_code == 422
    assert response.json()["error_details"] == {"code": ["value_already_exist"]}


async def test_update_a_billable_metric(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: PUT /api/v1/billable_metrics/:code, it "updates a
    billable_metric"."""
    metric = await created(lago, code="old")

    response = await update(lago, "old", **{**SUM, "description": "description"})

    assert response.status_code == 200
    body = response.json()["billable_metric"]
    assert (body["lago_id"], body["code"], body["filters"]) == (metric["lago_id"], "BM1_code", [])


async def test_update_an_unknown_metric_is_404(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: PUT, context "when billable metric does not exist",
    it "returns not_found error"."""
    response = await update(lago, "unknown", **SUM)

    assert response.status_code == 404
    assert response.json()["code"] == "billable_metric_not_found"


async def test_update_to_a_taken_code_is_422(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: PUT, context "when billable metric code already
    exists in organization scope (validation error)", it "returns unprocessable_entity error"."""
    await created(lago, code="one")
    await created(lago, code="two")

    response = await update(lago, "one", code="two")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"code": ["value_already_exist"]}


async def test_update_to_a_weighted_sum(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: PUT, context "with weighted sum aggregation", it
    "updates a billable_metric"."""
    await created(lago, code="old")

    response = await update(
        lago,
        "old",
        **{**SUM, "aggregation_type": "weighted_sum_agg", "recurring": True},
        weighted_interval="seconds",
    )

    assert response.status_code == 200
    body = response.json()["billable_metric"]
    assert body["recurring"] is True
    assert (body["aggregation_type"], body["weighted_interval"]) == ("weighted_sum_agg", "seconds")


async def test_a_metric_on_a_plan_only_changes_name_description_and_filters(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """BillableMetrics::UpdateService: "Only name and description are editable if billable
    metric is attached to a plan" (filters too); the rest is ignored, not refused."""
    metric = await created(lago, code="tokens")
    plan = {
        "name": "P",
        "code": "p",
        "interval": "monthly",
        "amount_cents": 0,
        "amount_currency": "USD",
        "pay_in_advance": False,
        "charges": [
            {
                "billable_metric_id": metric["lago_id"],
                "charge_model": "standard",
                "properties": {"amount": "1"},
            }
        ],
    }
    assert (await lago.post("/plans", json={"plan": plan})).status_code == 200

    response = await update(
        lago, "tokens", name="Tokens", description="d", code="renamed", field_name="other"
    )

    assert response.status_code == 200
    body = response.json()["billable_metric"]
    assert (body["name"], body["description"]) == ("Tokens", "d")
    assert (body["code"], body["field_name"]) == ("tokens", "amount")
    assert "tokens" in state.billable_metrics


async def test_show_a_billable_metric(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: GET /api/v1/billable_metrics/:code, it "returns a
    billable metric" and context "when billable metric does not exist"."""
    metric = await created(lago)

    found = await lago.get("/billable_metrics/BM1_code")
    unknown = await lago.get("/billable_metrics/unknown")

    assert found.status_code == 200
    assert found.json()["billable_metric"]["lago_id"] == metric["lago_id"]
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "billable_metric_not_found"


async def test_delete_a_billable_metric(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: DELETE /api/v1/billable_metrics/:code, its "returns
    deleted billable_metric" and "when billable metric does not exist"."""
    metric = await created(lago)

    deleted = await lago.delete("/billable_metrics/BM1_code")
    again = await lago.delete("/billable_metrics/BM1_code")

    assert deleted.status_code == 200
    assert deleted.json()["billable_metric"]["lago_id"] == metric["lago_id"]
    assert again.status_code == 404


async def test_index_with_pagination(lago: httpx.AsyncClient) -> None:
    """billable_metrics_controller_spec.rb: GET /api/v1/billable_metrics, it "returns billable
    metrics" and context "with pagination"."""
    await created(lago, code="one")
    await created(lago, code="two")

    response = await lago.get("/billable_metrics", params={"page": 1, "per_page": 1})

    assert response.status_code == 200
    assert len(response.json()["billable_metrics"]) == 1
    assert response.json()["meta"] == {
        "current_page": 1,
        "next_page": 2,
        "prev_page": None,
        "total_pages": 2,
        "total_count": 2,
    }
