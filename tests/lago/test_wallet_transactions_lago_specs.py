"""Lago's spec/requests/api/v1/wallet_transactions_controller_spec.rb, ported to the emulator,
with the refusals of app/services/wallet_transactions/validate_service.rb.

Each test names the ``describe``/``context``/``it`` it ports. Not ported: API key
permissions, paid top-up limits, targeted voids (traceable wallets), invoice custom
sections, the metadata filter, ``GET /wallet_transactions/:id``, payment URLs,
consumptions and fundings.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = pytest.mark.asyncio

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def wallet(lago: httpx.AsyncClient, granted: str = "0") -> str:
    customer = {"customer": {"external_id": "acme", "currency": "EUR"}}
    assert (await lago.post("/customers", json=customer)).status_code == 200
    body = {
        "external_customer_id": "acme",
        "rate_amount": "1",
        "currency": "EUR",
        "granted_credits": granted,
    }
    response = await lago.post("/wallets", json={"wallet": body})
    assert response.status_code == 200, response.text
    lago_id: str = response.json()["wallet"]["lago_id"]
    return lago_id


async def create(lago: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await lago.post("/wallet_transactions", json={"wallet_transaction": params})


async def test_create_paid_and_granted_credits(lago: httpx.AsyncClient) -> None:
    """wallet_transactions_controller_spec.rb: POST /api/v1/wallet_transactions, it "creates a
    wallet transactions"."""
    wallet_id = await wallet(lago)

    response = await create(
        lago,
        wallet_id=wallet_id,
        paid_credits="10",
        granted_credits="10",
        name="Custom Top-up Name",
        purchase_order_number="PO-789",
    )

    assert response.status_code == 200
    paid, granted = response.json()["wallet_transactions"]
    assert (paid["status"], granted["status"]) == ("pending", "settled")
    for made in (paid, granted):
        assert made["payment_method"]["payment_method_type"] == "provider"
        assert made["payment_method"].get("payment_method_id") is None
        assert made["name"] == "Custom Top-up Name"
        assert made["lago_wallet_id"] == wallet_id
        assert made["purchase_order_number"] == "PO-789"


async def test_voided_credits_settle_at_once(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """wallet_transactions_controller_spec.rb: POST, context "with voided credits", it "creates
    a wallet transactions"."""
    wallet_id = await wallet(lago, granted="20")

    response = await create(lago, wallet_id=wallet_id, voided_credits="10")

    assert response.status_code == 200
    (voided,) = response.json()["wallet_transactions"]
    assert (voided["status"], voided["transaction_status"]) == ("settled", "voided")
    assert voided["lago_wallet_id"] == wallet_id
    assert state.wallets[wallet_id]["credits_balance"] == "10.0"


async def test_metadata_is_on_every_transaction(lago: httpx.AsyncClient) -> None:
    """wallet_transactions_controller_spec.rb: POST, context "when metadata is present", it
    "creates the wallet transactions with correct data"."""
    wallet_id = await wallet(lago, granted="20")
    metadata = [{"key": "valid_value", "value": "also_valid"}]

    response = await create(
        lago,
        wallet_id=wallet_id,
        paid_credits="10",
        granted_credits="10",
        voided_credits="5",
        metadata=metadata,
    )

    assert response.status_code == 200
    made = response.json()["wallet_transactions"]
    assert [t["metadata"] for t in made] == [metadata] * 3


async def test_priority_is_on_every_transaction(lago: httpx.AsyncClient) -> None:
    """wallet_transactions_controller_spec.rb: POST, context "when priority is present", it
    "creates the wallet transactions with correct priority"."""
    wallet_id = await wallet(lago)

    response = await create(
        lago, wallet_id=wallet_id, paid_credits="10", granted_credits="10", priority=1
    )

    assert response.status_code == 200
    assert [t["priority"] for t in response.json()["wallet_transactions"]] == [1, 1]


async def test_an_unknown_wallet_is_422_wallet_not_found(lago: httpx.AsyncClient) -> None:
    """wallet_transactions_controller_spec.rb: POST, context "when wallet does not exist", it
    "returns unprocessable_entity error" (ValidateService#valid_wallet?)."""
    response = await create(lago, wallet_id=UNKNOWN, paid_credits="10")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"wallet_id": ["wallet_not_found"]}


async def test_a_terminated_wallet_is_wallet_is_terminated(lago: httpx.AsyncClient) -> None:
    """ValidateService#valid_wallet?: ``wallet_is_terminated``."""
    wallet_id = await wallet(lago)
    assert (await lago.delete(f"/wallets/{wallet_id}")).status_code == 200

    response = await create(lago, wallet_id=wallet_id, granted_credits="10")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"wallet_id": ["wallet_is_terminated"]}


@pytest.mark.parametrize("amount", [10, "abc", "-1", ""])
async def test_an_amount_that_is_no_decimal_string_is_invalid(
    lago: httpx.AsyncClient, amount: Any
) -> None:
    """ValidateService#valid_paid_credits_amount? and ``Validators::DecimalAmountService``:
    only a string holding a decimal from 0 is an amount; every field is reported."""
    wallet_id = await wallet(lago)

    response = await create(lago, wallet_id=wallet_id, paid_credits=amount, granted_credits=amount)

    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "paid_credits": ["invalid_paid_credits", "invalid_amount"],
        "granted_credits": ["invalid_granted_credits", "invalid_amount"],
    }


async def test_voiding_more_than_the_balance_is_insufficient_credits(
    lago: httpx.AsyncClient,
) -> None:
    """ValidateService#valid_voided_credits_amount?: ``insufficient_credits``."""
    wallet_id = await wallet(lago, granted="5")

    response = await create(lago, wallet_id=wallet_id, voided_credits="6")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"voided_credits": ["insufficient_credits"]}


async def listed(lago: httpx.AsyncClient, wallet_id: str, **params: Any) -> list[str]:
    response = await lago.get(f"/wallets/{wallet_id}/wallet_transactions", params=params)
    assert response.status_code == 200, response.text
    return [t["lago_id"] for t in response.json()["wallet_transactions"]]


async def transactions(lago: httpx.AsyncClient, wallet_id: str) -> dict[str, str]:
    """A purchased, a granted and a voided transaction, ids by transaction_status."""
    made: dict[str, str] = {}
    for key in ("paid_credits", "granted_credits", "voided_credits"):
        response = await create(lago, wallet_id=wallet_id, **{key: "1"})
        transaction = response.json()["wallet_transactions"][0]
        made[transaction["transaction_status"]] = transaction["lago_id"]
    return made


async def test_index_lists_the_wallets_transactions_newest_first(lago: httpx.AsyncClient) -> None:
    """wallet_transactions_controller_spec.rb: GET /api/v1/wallet_transactions, it "returns
    wallet transactions" (``BaseQuery::DEFAULT_ORDER``: created_at desc)."""
    wallet_id = await wallet(lago)
    first = (await create(lago, wallet_id=wallet_id, granted_credits="1")).json()
    second = (await create(lago, wallet_id=wallet_id, granted_credits="2")).json()

    ids = await listed(lago, wallet_id)

    assert ids == [
        second["wallet_transactions"][0]["lago_id"],
        first["wallet_transactions"][0]["lago_id"],
    ]


async def test_index_pagination_meta(lago: httpx.AsyncClient) -> None:
    """wallet_transactions_controller_spec.rb: GET, context "with pagination", it "returns
    wallet transactions with correct meta data"."""
    wallet_id = await wallet(lago)
    for _ in range(2):
        await create(lago, wallet_id=wallet_id, granted_credits="1")

    response = await lago.get(
        f"/wallets/{wallet_id}/wallet_transactions", params={"page": 1, "per_page": 1}
    )

    assert response.status_code == 200
    assert len(response.json()["wallet_transactions"]) == 1
    assert response.json()["meta"] == {
        "current_page": 1,
        "next_page": 2,
        "prev_page": None,
        "total_pages": 2,
        "total_count": 2,
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "pending"}, ["purchased"]),
        ({"transaction_type": "outbound"}, ["voided"]),
        ({"transaction_status": "purchased"}, ["purchased"]),
        ({"transaction_status": "granted"}, ["granted"]),
        ({"transaction_status": "voided"}, ["voided"]),
        ({"transaction_status": "invalid"}, ["voided", "granted", "purchased"]),
    ],
)
async def test_index_filters(
    lago: httpx.AsyncClient, params: dict[str, str], expected: list[str]
) -> None:
    """wallet_transactions_controller_spec.rb: GET, contexts "with status param", "with
    transaction type param", "with transaction_status filter" (purchased, granted, voided) and
    "with invalid transaction_status value" ("ignores invalid transaction_status values")."""
    wallet_id = await wallet(lago)
    made = await transactions(lago, wallet_id)

    assert await listed(lago, wallet_id, **params) == [made[name] for name in expected]


async def test_index_of_an_unknown_wallet_is_404(lago: httpx.AsyncClient) -> None:
    """wallet_transactions_controller_spec.rb: GET, context "when wallet does not exist", it
    "returns not_found error"."""
    response = await lago.get(f"/wallets/{UNKNOWN}/wallet_transactions")

    assert response.status_code == 404
    assert response.json()["code"] == "wallet_not_found"
