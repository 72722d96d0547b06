"""Lago's spec/requests/api/v1/coupons_controller_spec.rb, ported to the emulator, with the
checks of app/models/coupon.rb, app/services/coupons/create_service.rb, update_service.rb and
validate_service.rb.

Each test names the ``describe``/``context``/``it`` it ports. Not ported: API key
permissions, deleted coupons' discard job, activity logs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState
from lago.emulator.clock import iso

pytestmark = pytest.mark.asyncio

COUPON = {
    "name": "coupon1",
    "code": "coupon1_code",
    "coupon_type": "fixed_amount",
    "frequency": "once",
    "amount_cents": 123,
    "amount_currency": "EUR",
    "expiration": "no_expiration",
}


async def create(lago: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await lago.post("/coupons", json={"coupon": params})


async def update(lago: httpx.AsyncClient, path_code: str, **params: Any) -> httpx.Response:
    return await lago.put(f"/coupons/{path_code}", json={"coupon": params})


async def metric(lago: httpx.AsyncClient, code: str = "calls") -> None:
    body = {"billable_metric": {"name": code, "code": code, "aggregation_type": "count_agg"}}
    assert (await lago.post("/billable_metrics", json=body)).status_code == 200


async def test_create_a_coupon(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """coupons_controller_spec.rb: POST /api/v1/coupons, it "creates a coupon"."""
    await metric(lago)
    expiration_at = iso(state.now() + timedelta(days=15))

    response = await create(
        lago,
        **{**COUPON, "expiration": "time_limit"},
        expiration_at=expiration_at,
        reusable=False,
        applies_to={"billable_metric_codes": ["calls"]},
    )

    assert response.status_code == 200
    coupon = response.json()["coupon"]
    assert coupon["lago_id"] and coupon["created_at"]
    assert (coupon["code"], coupon["name"]) == ("coupon1_code", "coupon1")
    assert coupon["expiration_at"] == expiration_at
    assert coupon["reusable"] is False
    assert coupon["limited_billable_metrics"] is True
    assert coupon["billable_metric_codes"] == ["calls"]


@pytest.mark.parametrize("expiration_at", ["2020-01-01T00:00:00Z", "tomorrow", 1])
async def test_a_past_or_unreadable_expiration_at_is_invalid_date(
    lago: httpx.AsyncClient, expiration_at: Any
) -> None:
    """Coupons::ValidateService#valid_expiration_at? (``ExpirationDateValidator``): checked
    alone, before the model's validations."""
    response = await create(lago, name="", expiration_at=expiration_at)

    assert response.status_code == 422
    assert response.json()["error_details"] == {"expiration_at": ["invalid_date"]}


async def test_time_limit_without_expiration_at_is_accepted(lago: httpx.AsyncClient) -> None:
    """Coupon has no validation tying ``expiration_at`` to ``time_limit``."""
    response = await create(lago, **{**COUPON, "expiration": "time_limit"})

    assert response.status_code == 200
    assert response.json()["coupon"]["expiration_at"] is None


async def test_every_failed_validation_is_reported(lago: httpx.AsyncClient) -> None:
    """Coupon validations, enums first: a missing enum is ``value_is_invalid``, blank fields
    ``value_is_mandatory``."""
    response = await create(lago, coupon_type="fixed_amount", reusable=None)

    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "expiration": ["value_is_invalid"],
        "frequency": ["value_is_invalid"],
        "name": ["value_is_mandatory"],
        "code": ["value_is_mandatory"],
        "amount_cents": ["value_is_mandatory"],
        "amount_currency": ["value_is_mandatory"],
        "reusable": ["value_is_invalid"],
    }


@pytest.mark.parametrize(
    ("params", "details"),
    [
        ({"amount_cents": 0}, {"amount_cents": ["value_is_invalid"]}),
        ({"amount_currency": "XXX"}, {"amount_currency": ["value_is_invalid"]}),
        ({"frequency": "recurring"}, {"frequency_duration": ["value_is_mandatory"]}),
        (
            {"frequency": "recurring", "frequency_duration": 0},
            {"frequency_duration": ["value_is_invalid"]},
        ),
        (
            {"coupon_type": "percentage", "amount_cents": None, "amount_currency": None},
            {"percentage_rate": ["value_is_mandatory"]},
        ),
    ],
)
async def test_amount_and_frequency_rules(
    lago: httpx.AsyncClient, params: dict[str, Any], details: dict[str, list[str]]
) -> None:
    """Coupon: ``amount_cents`` > 0, ``amount_currency`` in the list, ``frequency_duration``
    > 0 when recurring, ``percentage_rate`` for percentage coupons."""
    response = await create(lago, **{**COUPON, **params})

    assert response.status_code == 422
    assert response.json()["error_details"] == details


async def test_unknown_targets_are_404_and_both_kinds_405(lago: httpx.AsyncClient) -> None:
    """Coupons::CreateService: ``not_found_failure!(resource: "plans")`` /
    ``"billable_metrics"``, ``only_one_limitation_type_per_coupon_allowed``."""
    await metric(lago)
    plan = {
        "name": "P",
        "code": "p",
        "interval": "monthly",
        "amount_cents": 0,
        "amount_currency": "EUR",
        "pay_in_advance": False,
    }
    assert (await lago.post("/plans", json={"plan": plan})).status_code == 200

    no_plan = await create(lago, **COUPON, applies_to={"plan_codes": ["nope"]})
    no_metric = await create(lago, **COUPON, applies_to={"billable_metric_codes": ["nope"]})
    both = await create(
        lago, **COUPON, applies_to={"plan_codes": ["p"], "billable_metric_codes": ["calls"]}
    )

    assert (no_plan.status_code, no_plan.json()["code"]) == (404, "plans_not_found")
    assert (no_metric.status_code, no_metric.json()["code"]) == (404, "billable_metrics_not_found")
    assert (both.status_code, both.json()["code"]) == (
        405,
        "only_one_limitation_type_per_coupon_allowed",
    )


async def test_update_a_coupon(lago: httpx.AsyncClient) -> None:
    """coupons_controller_spec.rb: PUT /api/v1/coupons/:code, it "updates a coupon"."""
    await create(lago, **{**COUPON, "code": "old"})

    response = await update(lago, "old", **{**COUPON, "code": "coupon_code"})

    assert response.status_code == 200
    assert response.json()["coupon"]["code"] == "coupon_code"


async def test_update_an_unknown_coupon_is_404(lago: httpx.AsyncClient) -> None:
    """coupons_controller_spec.rb: PUT, context "when coupon does not exist", it "returns
    not_found error"."""
    response = await update(lago, "unknown", **COUPON)

    assert (response.status_code, response.json()["code"]) == (404, "coupon_not_found")


async def test_update_to_a_taken_code_is_422(lago: httpx.AsyncClient) -> None:
    """coupons_controller_spec.rb: PUT, context "when coupon code already exists in
    organization scope (validation error)", it "returns unprocessable_entity error"."""
    await create(lago, **{**COUPON, "code": "one"})
    await create(lago, **{**COUPON, "code": "two"})

    response = await update(lago, "one", code="two")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"code": ["value_already_exist"]}


async def test_an_applied_coupon_only_changes_name_description_and_expiration(
    lago: httpx.AsyncClient,
) -> None:
    """Coupons::UpdateService: once applied, code, type, amounts, frequency and reusable are
    ignored."""
    await create(lago, **COUPON)
    customer = {"customer": {"external_id": "acme", "currency": "EUR"}}
    assert (await lago.post("/customers", json=customer)).status_code == 200
    apply = {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "coupon1_code"}}
    assert (await lago.post("/applied_coupons", json=apply)).status_code == 200

    response = await update(lago, "coupon1_code", name="New", code="x", amount_cents=1)

    assert response.status_code == 200
    coupon = response.json()["coupon"]
    assert (coupon["name"], coupon["code"], coupon["amount_cents"]) == ("New", "coupon1_code", 123)


async def test_show_delete_and_index(lago: httpx.AsyncClient) -> None:
    """coupons_controller_spec.rb: GET /api/v1/coupons/:code ("returns a coupon", "when coupon
    does not exist"), DELETE ("returns deleted coupon", "when coupon does not exist") and
    GET /api/v1/coupons ("returns coupons", "with pagination")."""
    await create(lago, **{**COUPON, "code": "one"})
    await create(lago, **{**COUPON, "code": "two"})

    found = await lago.get("/coupons/one")
    unknown = await lago.get("/coupons/unknown")
    page = await lago.get("/coupons", params={"page": 1, "per_page": 1})
    deleted = await lago.delete("/coupons/two")
    again = await lago.delete("/coupons/two")

    assert found.json()["coupon"]["code"] == "one"
    assert (unknown.status_code, unknown.json()["code"]) == (404, "coupon_not_found")
    assert len(page.json()["coupons"]) == 1
    assert (page.json()["meta"]["next_page"], page.json()["meta"]["total_count"]) == (2, 2)
    assert deleted.json()["coupon"]["code"] == "two"
    assert again.status_code == 404
