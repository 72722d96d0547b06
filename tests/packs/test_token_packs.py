from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlmodel import select

from gateway.audit.models import AuditEntry
from gateway.errors import GatewayError
from gateway.integrations.lago.client import LagoClient
from gateway.packs import idempotency, service
from gateway.packs.models import PackPurchase
from lago.emulator import create_app as create_emulator
from tests.conftest import LAGO_KEY, LAGO_URL, Gateway
from tests.packs.conftest import purchased, subscribe

URL = "/gateway/customers/{}/token-packs/{}"


async def test_a_pack_is_one_top_up_of_its_paid_credits_on_a_new_token_wallet(
    shop: Gateway,
) -> None:
    await subscribe(shop, "alice", "basic_monthly")

    response = await shop.client.post(
        URL.format("alice", "medium"), headers=await shop.headers("billing:write")
    )

    assert response.status_code == 201, response.text
    body = response.json()["token_pack_purchase"]
    assert body["tokens"] == 275
    assert (body["paid_credits"], body["granted_credits"], body["amount_cents"]) == (
        "199.8",
        "75.2",
        999,
    )
    assert (body["status"], body["bonus_status"]) == ("pending", "awaiting_payment")
    [wallet] = shop.emulator.wallets.values()
    assert (wallet["code"], wallet["rate_amount"], wallet["currency"]) == ("tokens", "0.05", "USD")
    [paid] = shop.emulator.wallet_transactions.values()
    assert (paid["transaction_status"], paid["status"]) == ("purchased", "pending")
    assert paid["credit_amount"] == "199.8"
    assert body["wallet_transactions"] == [
        {
            "lago_id": paid["lago_id"],
            "transaction_status": "purchased",
            "status": "pending",
            "credit_amount": "199.8",
        }
    ]
    invoice = shop.emulator.invoices[body["lago_invoice_id"]]
    assert (invoice["invoice_type"], invoice["total_amount_cents"]) == ("credit", 999)
    async with shop.runtime.database.session() as session:
        audit = (
            await session.exec(
                select(AuditEntry).where(AuditEntry.action == "packs.token_pack.buy")
            )
        ).one()
    assert (audit.outcome, audit.target, audit.target_ids) == (
        "success",
        "alice",
        [body["purchase_id"]],
    )


async def test_repeating_a_request_with_its_idempotency_key_buys_once(shop: Gateway) -> None:
    await subscribe(shop, "bob", "free_monthly")
    headers = {**await shop.headers("billing:write"), "Idempotency-Key": "order-1"}

    answers = [
        await shop.client.post(URL.format("bob", "small"), headers=headers) for _ in range(3)
    ]

    assert [a.status_code for a in answers] == [201, 201, 201]
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert "idempotent-replayed" not in answers[0].headers
    assert answers[2].headers["idempotent-replayed"] == "true"
    assert len(purchased(shop)) == 1


async def test_concurrent_identical_requests_buy_once(shop: Gateway) -> None:
    await subscribe(shop, "carol", "basic_monthly")
    headers = {**await shop.headers("billing:write"), "Idempotency-Key": "order-2"}

    answers = await asyncio.gather(
        *(shop.client.post(URL.format("carol", "large"), headers=headers) for _ in range(6))
    )

    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409} and 201 in statuses
    for refused in (a for a in answers if a.status_code == 409):
        assert refused.json()["code"] == "idempotency_key_in_progress"
        assert refused.headers["retry-after"] == "1"
    retried = await shop.client.post(URL.format("carol", "large"), headers=headers)
    assert retried.status_code == 201
    assert len(purchased(shop)) == 1
    assert len(shop.emulator.wallets) == 1


async def test_a_duplicate_of_a_purchase_in_flight_is_told_to_retry(shop: Gateway) -> None:
    await subscribe(shop, "dan", "basic_monthly")
    headers = await shop.headers("billing:write")
    principal = await shop.parts.keys.verify(headers["Authorization"].split()[1])
    assert principal is not None
    await idempotency.claim(
        shop.runtime.database,
        actor=principal.name,
        key="order-3",
        external_customer_id="dan",
        pack_code="small",
        stale_after=60,
    )

    response = await shop.client.post(
        URL.format("dan", "small"), headers={**headers, "Idempotency-Key": "order-3"}
    )

    assert response.status_code == 409
    assert purchased(shop) == []


async def test_the_same_key_for_another_pack_is_refused(shop: Gateway) -> None:
    await subscribe(shop, "erin", "basic_monthly")
    headers = {**await shop.headers("billing:write"), "Idempotency-Key": "order-4"}
    await shop.client.post(URL.format("erin", "small"), headers=headers)

    other = await shop.client.post(URL.format("erin", "mega"), headers=headers)

    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert len(purchased(shop)) == 1


async def test_an_unknown_pack_is_404_naming_it(shop: Gateway) -> None:
    response = await shop.client.post(
        URL.format("frank", "jumbo"), headers=await shop.headers("billing:write")
    )

    assert response.status_code == 404
    assert response.json()["code"] == "token_pack_not_found"
    assert "'jumbo'" in response.json()["error_details"]["message"]


async def test_lago_refusing_the_customer_buys_nothing_and_frees_the_key(shop: Gateway) -> None:
    headers = {**await shop.headers("billing:write"), "Idempotency-Key": "order-5"}

    refused = await shop.client.post(URL.format("nobody", "small"), headers=headers)
    await subscribe(shop, "nobody", "basic_monthly")
    bought = await shop.client.post(URL.format("nobody", "small"), headers=headers)

    assert refused.status_code == 404
    assert refused.json()["code"] == "customer_not_found"
    assert bought.status_code == 201
    assert len(purchased(shop)) == 1
    async with shop.runtime.database.session() as session:
        outcomes = (
            await session.exec(
                select(AuditEntry.outcome).where(AuditEntry.action == "packs.token_pack.buy")
            )
        ).all()
    assert sorted(outcomes) == ["rejected", "success"]


class LostAnswer(httpx.AsyncBaseTransport):
    """Lago takes the top-up, then the connection drops before its answer arrives."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/wallet_transactions"):
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


async def test_a_retry_after_a_lost_answer_finds_the_top_up_instead_of_buying_again(
    shop: Gateway,
) -> None:
    await subscribe(shop, "gina", "basic_monthly")
    lago_app = create_emulator(shop.emulator, api_key=LAGO_KEY)
    flaky = LagoClient(LAGO_URL, LAGO_KEY, transport=LostAnswer(httpx.ASGITransport(app=lago_app)))
    options = {
        "actor": "shop",
        "external_customer_id": "gina",
        "pack_code": "medium",
        "idempotency_key": "order-6",
        "stale_after": 60.0,
    }

    with pytest.raises(GatewayError) as lost:
        await service.buy_pack(shop.runtime.database, flaky, shop.parts.catalog, **options)  # type: ignore[arg-type]
    await flaky.aclose()
    assert lost.value.status == 503
    retried = await service.buy_pack(
        shop.runtime.database, shop.runtime.lago, shop.parts.catalog, **options
    )  # type: ignore[arg-type]

    assert retried.status == 201
    assert (
        retried.body["token_pack_purchase"]["lago_invoice_id"]
        == purchased(shop)[0]["lago_invoice_id"]
    )
    assert len(purchased(shop)) == 1
    async with shop.runtime.database.session() as session:
        row = (await session.exec(select(PackPurchase))).one()
    assert (row.status, row.attempts) == ("done", 2)
