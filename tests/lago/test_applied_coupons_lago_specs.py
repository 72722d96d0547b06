"""Lago's spec/requests/api/v1/applied_coupons_controller_spec.rb and its shared
spec/support/shared_examples/applied_coupon_index.rb, ported to the emulator.

Each test names the ``describe``/``context``/``it`` it ports. Not ported: API key
permissions. The refusals of AppliedCoupons::CreateService (terminated, expired, not
reusable) are in ``test_usage_wallets_coupons.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.asyncio


def coupon(code: str) -> dict[str, Any]:
    return {
        "name": code,
        "code": code,
        "coupon_type": "fixed_amount",
        "amount_cents": 10,
        "amount_currency": "EUR",
        "frequency": "once",
        "expiration": "no_expiration",
    }


async def setup(lago: httpx.AsyncClient, *customers: str) -> None:
    for external_id in customers:
        body = {"customer": {"external_id": external_id, "currency": "EUR"}}
        assert (await lago.post("/customers", json=body)).status_code == 200
    for code in ("coupon_1", "coupon_2"):
        assert (await lago.post("/coupons", json={"coupon": coupon(code)})).status_code == 200


async def apply(lago: httpx.AsyncClient, customer: str, code: str) -> httpx.Response:
    body = {"applied_coupon": {"external_customer_id": customer, "coupon_code": code}}
    return await lago.post("/applied_coupons", json=body)


async def applied(lago: httpx.AsyncClient, customer: str, code: str) -> str:
    response = await apply(lago, customer, code)
    assert response.status_code == 200, response.text
    lago_id: str = response.json()["applied_coupon"]["lago_id"]
    return lago_id


async def listed(lago: httpx.AsyncClient, **params: Any) -> httpx.Response:
    response = await lago.get("/applied_coupons", params=params)
    assert response.status_code == 200, response.text
    return response


async def test_apply_a_coupon(lago: httpx.AsyncClient) -> None:
    """applied_coupons_controller_spec.rb: POST /api/v1/applied_coupons, it "returns a
    success"."""
    await setup(lago, "acme")
    made = (await lago.get("/coupons/coupon_1")).json()["coupon"]
    customer = (await lago.get("/customers/acme")).json()["customer"]

    response = await apply(lago, "acme", "coupon_1")

    assert response.status_code == 200
    body = response.json()["applied_coupon"]
    assert body["lago_id"] and body["created_at"]
    assert (body["lago_coupon_id"], body["lago_customer_id"]) == (
        made["lago_id"],
        customer["lago_id"],
    )
    assert body["external_customer_id"] == "acme"
    assert (body["amount_cents"], body["amount_currency"]) == (10, "EUR")
    assert (body["expiration_at"], body["terminated_at"]) == (None, None)


async def test_apply_without_customer_or_coupon_is_404(lago: httpx.AsyncClient) -> None:
    """applied_coupons_controller_spec.rb: POST, context "with invalid params", it "returns an
    unprocessable_entity" (a 404: AppliedCoupons::CreateService finds no customer)."""
    response = await lago.post("/applied_coupons", json={"applied_coupon": {"name": "Foo Bar"}})

    assert response.status_code == 404
    assert response.json()["code"] == "customer_not_found"


async def test_index_newest_first(lago: httpx.AsyncClient) -> None:
    """applied_coupon_index.rb: it "returns applied coupons"."""
    await setup(lago, "acme")
    first = await applied(lago, "acme", "coupon_1")
    second = await applied(lago, "acme", "coupon_2")

    response = await listed(lago)

    assert [a["lago_id"] for a in response.json()["applied_coupons"]] == [second, first]
    assert response.json()["meta"] == {
        "current_page": 1,
        "next_page": None,
        "prev_page": None,
        "total_pages": 1,
        "total_count": 2,
    }


async def test_index_pagination(lago: httpx.AsyncClient) -> None:
    """applied_coupon_index.rb: context "with pagination", it "returns paginated applied
    coupons"."""
    await setup(lago, "acme")
    first = await applied(lago, "acme", "coupon_1")
    await applied(lago, "acme", "coupon_2")

    response = await listed(lago, page=2, per_page=1)

    assert [a["lago_id"] for a in response.json()["applied_coupons"]] == [first]
    assert response.json()["meta"] == {
        "current_page": 2,
        "next_page": None,
        "prev_page": 1,
        "total_pages": 2,
        "total_count": 2,
    }


@pytest.mark.parametrize(("status", "count"), [("active", 2), ("terminated", 0), ("nope", 2)])
async def test_index_status_filter(lago: httpx.AsyncClient, status: str, count: int) -> None:
    """applied_coupon_index.rb: context "with status filter" (and "when no applied coupons
    match the status"); AppliedCouponsQuery#valid_status? ignores an unknown status."""
    await setup(lago, "acme")
    await applied(lago, "acme", "coupon_1")
    await applied(lago, "acme", "coupon_2")

    response = await listed(lago, status=status)

    assert len(response.json()["applied_coupons"]) == count


@pytest.mark.parametrize("key", ["coupon_code", "coupon_code[]"])
async def test_index_coupon_code_filter(lago: httpx.AsyncClient, key: str) -> None:
    """applied_coupon_index.rb: context "with coupon_code filter" (a value or an array)."""
    await setup(lago, "acme")
    first = await applied(lago, "acme", "coupon_1")
    await applied(lago, "acme", "coupon_2")

    response = await listed(lago, **{key: "coupon_1"})

    assert [a["lago_id"] for a in response.json()["applied_coupons"]] == [first]


async def test_index_external_customer_id_filter(lago: httpx.AsyncClient) -> None:
    """applied_coupons_controller_spec.rb: GET /api/v1/applied_coupons, context "with
    external_customer_id filter" and "when no applied coupons match the
    external_customer_id"."""
    await setup(lago, "acme", "other")
    mine = {await applied(lago, "acme", "coupon_1"), await applied(lago, "acme", "coupon_2")}
    await applied(lago, "other", "coupon_1")

    found = await listed(lago, external_customer_id="acme")
    none = await listed(lago, external_customer_id="non_existent_id")

    assert {a["lago_id"] for a in found.json()["applied_coupons"]} == mine
    assert none.json()["applied_coupons"] == []
