"""Webhooks are queued per endpoint, signed as Lago signs them, delivered with retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import httpx
import jwt
import orjson
import pytest

from lago.emulator import EmulatorState

pytestmark = pytest.mark.asyncio


async def register(lago: httpx.AsyncClient, url: str, algorithm: str, **extra: Any) -> Any:
    return await lago.post(
        "/webhook_endpoints",
        json={"webhook_endpoint": {"webhook_url": url, "signature_algo": algorithm, **extra}},
    )


class Receiver:
    """A webhook receiver answering from a list of statuses, recording what it got."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = statuses or []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


async def test_hmac_signature_verifies_over_the_raw_body(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await register(lago, "https://gw.test/lago", "hmac")
    await lago.post("/customers", json={"customer": {"external_id": "acme"}})
    receiver = Receiver()

    async with receiver.client() as client:
        await state.deliver_webhooks(client)

    request = receiver.requests[0]
    expected = base64.b64encode(
        hmac.new(state.hmac_key.encode(), request.content, hashlib.sha256).digest()
    ).decode()
    assert request.headers["X-Lago-Signature-Algorithm"] == "hmac"
    assert hmac.compare_digest(request.headers["X-Lago-Signature"], expected)
    body = orjson.loads(request.content)
    assert body["webhook_type"] == "customer.created"
    assert body["object_type"] == "customer"
    assert body["organization_id"] == state.organization_id
    assert body["customer"]["external_id"] == "acme"


async def test_jwt_signature_verifies_with_the_published_public_key(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await register(lago, "https://gw.test/lago", "jwt")
    await lago.post("/customers", json={"customer": {"external_id": "acme"}})
    published = (await lago.get("/webhooks/json_public_key")).json()["webhook"]["public_key"]
    receiver = Receiver()

    async with receiver.client() as client:
        await state.deliver_webhooks(client)

    request = receiver.requests[0]
    claims = jwt.decode(
        request.headers["X-Lago-Signature"],
        base64.b64decode(published),
        algorithms=["RS256"],
        issuer=state.api_url,
    )
    assert request.headers["X-Lago-Signature-Algorithm"] == "jwt"
    assert claims["data"] == request.content.decode()


async def test_failed_delivery_is_retried_with_the_same_unique_key(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await register(lago, "https://gw.test/lago", "hmac")
    await lago.post("/customers", json={"customer": {"external_id": "acme"}})
    receiver = Receiver([500, 302])

    async with receiver.client() as client:
        sent = await state.deliver_webhooks(client)

    keys = {r.headers["X-Lago-Unique-Key"] for r in receiver.requests}
    assert len(receiver.requests) == 3
    assert len(keys) == 1
    assert sent[0].attempts == [500, 302, 200]
    assert sent[0].status == "succeeded"
    assert state.webhooks_pending == []


async def test_delivery_gives_up_after_the_configured_attempts(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await register(lago, "https://gw.test/lago", "hmac")
    await lago.post("/customers", json={"customer": {"external_id": "acme"}})
    state.webhook_attempts = 2
    receiver = Receiver([503, 503, 503])

    async with receiver.client() as client:
        await state.deliver_webhooks(client)

    assert state.webhooks_sent[0].status == "failed"
    assert state.webhooks_sent[0].attempts == [503, 503]


async def test_each_endpoint_gets_the_types_it_subscribed(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    await register(lago, "https://a.test", "hmac", event_types=["invoice.created"])
    await register(lago, "https://b.test", "hmac")
    await lago.post("/customers", json={"customer": {"external_id": "acme"}})

    state.issue_invoice("acme", 100)

    sent = [(w.url, w.webhook_type) for w in state.webhooks_pending]
    assert sent == [
        ("https://b.test", "customer.created"),
        ("https://a.test", "invoice.created"),
        ("https://b.test", "invoice.created"),
    ]


async def test_no_endpoint_means_no_webhook(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    await lago.post("/customers", json={"customer": {"external_id": "acme"}})

    assert state.webhooks_pending == []


async def test_lifecycle_events_emit_lagos_webhook_types(
    lago: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    await register(lago, "https://gw.test", "hmac")
    await lago.post("/customers", json={"customer": {"external_id": "acme", "currency": "USD"}})
    await lago.post("/customers", json={"customer": {"external_id": "acme", "name": "Acme"}})
    await lago.post(
        "/subscriptions",
        json={
            "subscription": {
                "external_customer_id": "acme",
                "plan_code": "pro",
                "external_id": "s1",
            }
        },
    )
    await lago.delete("/subscriptions/s1")
    wallet = (
        await lago.post(
            "/wallets",
            json={
                "wallet": {
                    "external_customer_id": "acme",
                    "currency": "USD",
                    "rate_amount": "1",
                    "paid_credits": "5",
                }
            },
        )
    ).json()["wallet"]
    credit_invoice = next(iter(state.invoices))
    await lago.put(f"/invoices/{credit_invoice}", json={"invoice": {"payment_status": "succeeded"}})
    fee = state.invoices[credit_invoice]["fees"][0]["lago_id"]
    await lago.post(
        "/credit_notes",
        json={
            "credit_note": {
                "invoice_id": credit_invoice,
                "refund_amount_cents": 100,  # a credit invoice is refunded, never credited
                "items": [{"fee_id": fee, "amount_cents": 100}],
            }
        },
    )

    types = [w.webhook_type for w in state.webhooks_pending]
    assert wallet["lago_id"]
    for expected in (
        "customer.created",
        "customer.updated",
        "subscription.started",
        "subscription.terminated",
        "wallet.created",
        "wallet_transaction.created",
        "invoice.paid_credit_added",
        "invoice.payment_status_updated",
        "wallet_transaction.updated",
        "credit_note.created",
    ):
        assert expected in types


async def test_endpoint_registry_limits(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    for index in range(10):
        assert (await register(lago, f"https://{index}.test", "hmac")).status_code == 200

    eleventh = await register(lago, "https://11.test", "hmac")
    duplicate = await register(lago, "https://0.test", "hmac")
    listed = await lago.get("/webhook_endpoints")
    endpoint_id = listed.json()["webhook_endpoints"][0]["lago_id"]
    deleted = await lago.delete(f"/webhook_endpoints/{endpoint_id}")

    assert eleventh.status_code == 422
    assert duplicate.json()["error_details"] == {
        "webhook_url": ["value_already_exist"],
        "base": ["exceeded_limit"],
    }
    assert listed.json()["meta"]["total_count"] == 10
    assert deleted.status_code == 200
    assert len(state.webhook_endpoints) == 9
