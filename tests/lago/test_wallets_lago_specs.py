"""Lago's spec/requests/api/v1/wallets_controller_spec.rb, ported to the emulator (its own
contexts; the shared ``a wallet ... endpoint`` examples are left to the emulator's wallet
tests). Not ported: billing entities, invoice custom sections, payment methods, metadata,
recurring rules, limitations (``applies_to``).
"""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.asyncio


async def customer(lago: httpx.AsyncClient) -> None:
    body = {"customer": {"external_id": "acme", "currency": "EUR"}}
    assert (await lago.post("/customers", json=body)).status_code == 200


async def test_create_without_external_customer_id_is_422_customer_not_found(
    lago: httpx.AsyncClient,
) -> None:
    """wallets_controller_spec.rb: POST /api/v1/wallets, context "when
    params[:external_customer_id] is empty", it "returns a validation error"."""
    await customer(lago)

    response = await lago.post("/wallets", json={"wallet": {"rate_amount": "1", "currency": "EUR"}})

    assert response.status_code == 422
    assert response.json()["error_details"]["customer"] == ["customer_not_found"]


async def test_a_seventh_active_wallet_is_wallet_limit_reached(lago: httpx.AsyncClient) -> None:
    """Wallets::ValidateService#valid_wallet_limit? (MAXIMUM_WALLETS_PER_CUSTOMER = 6)."""
    await customer(lago)
    wallet = {"external_customer_id": "acme", "rate_amount": "1", "currency": "EUR"}
    for _ in range(6):
        assert (await lago.post("/wallets", json={"wallet": wallet})).status_code == 200

    response = await lago.post("/wallets", json={"wallet": wallet})

    assert response.status_code == 422
    assert response.json()["error_details"] == {"customer": ["wallet_limit_reached"]}


async def test_index_of_an_unknown_customer_is_404(lago: httpx.AsyncClient) -> None:
    """wallets_controller_spec.rb: GET /api/v1/wallets, context "when external_customer_id does
    not belong to the current organization", it "returns a not found error"."""
    response = await lago.get("/wallets", params={"external_customer_id": "nobody"})

    assert response.status_code == 404
    assert response.json()["code"] == "customer_not_found"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_an_unknown_wallet_is_404_wallet_not_found(
    lago: httpx.AsyncClient, method: str
) -> None:
    """WalletActions#wallet_show, Wallets::UpdateService and Wallets::TerminateService answer
    ``not_found_failure!(resource: "wallet")``."""
    body = {"wallet": {"name": "x"}} if method == "PUT" else None

    response = await lago.request(method, "/wallets/unknown", json=body)

    assert response.status_code == 404
    assert response.json()["code"] == "wallet_not_found"
