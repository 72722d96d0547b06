"""Every emulator endpoint, driven through the contract recorder: the emulator is Lago-shaped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lago.emulator import EmulatorState, create_app
from lago.emulator.contract import ContractViolation, validate_webhook

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("require_spec")]


@pytest_asyncio.fixture
async def checked(state: EmulatorState, make_client: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(create_app(state, api_key="test-lago-key", validate=True)) as client:
        yield client


def assert_clean(violations: list[str]) -> None:
    assert not violations, "\n\n".join(violations)


def event(transaction_id: str) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "external_subscription_id": "sub_1",
        "code": "tokens",
        "timestamp": 1756684800,
        "properties": {"tokens": 1, "m": "x"},
    }


async def expect(response: Awaitable[httpx.Response], status: int = 200) -> Any:
    result = await response
    assert result.status_code == status, result.text
    return result.json() if result.content else None


async def test_tier_one_endpoints_match_the_spec(
    checked: httpx.AsyncClient, state: EmulatorState, catalog_factory: Any
) -> None:
    c = checked
    await catalog_factory(c)
    await expect(
        c.post(
            "/customers",
            json={
                "customer": {
                    "external_id": "acme",
                    "name": "Acme",
                    "currency": "USD",
                    "email": "a@acme.test",
                    "metadata": [{"key": "tier", "value": "gold", "display_in_invoice": False}],
                    "billing_configuration": {"invoice_grace_period": 2},
                }
            },
        )
    )
    await expect(c.get("/customers"))
    await expect(c.get("/customers/acme"))
    await expect(c.get("/customers/nobody"), 404)
    await expect(
        c.post(
            "/subscriptions",
            json={
                "subscription": {
                    "external_customer_id": "acme",
                    "plan_code": "pro",
                    "external_id": "sub_1",
                }
            },
        )
    )
    await expect(
        c.post(
            "/subscriptions",
            json={
                "subscription": {
                    "external_customer_id": "acme",
                    "plan_code": "basic",
                    "external_id": "sub_1",
                }
            },
        )
    )
    await expect(c.get("/subscriptions", params={"external_customer_id": "acme"}))
    await expect(c.get("/subscriptions/sub_1"))
    await expect(
        c.put("/subscriptions/sub_1", json={"subscription": {"name": "Team", "ending_at": None}})
    )
    await expect(c.post("/events", json={"event": event("t1")}))
    await expect(c.post("/events", json={"event": event("t1")}), 422)
    await expect(c.post("/events/batch", json={"events": [event("t2"), event("t3")]}))
    await expect(c.post("/events/batch", json={"events": [event("t2")]}), 422)
    await expect(c.get("/events/t1"))
    await expect(c.get("/events", params={"external_subscription_id": "sub_1"}))
    await expect(c.get("/billable_metrics"))
    await expect(c.get("/billable_metrics/tokens"))
    await expect(c.put("/billable_metrics/calls", json={"billable_metric": {"name": "API"}}))
    await expect(c.get("/plans"))
    await expect(c.get("/plans/pro"))
    await expect(c.put("/plans/pro", json={"plan": {"name": "Pro+"}}))
    await expect(c.delete("/subscriptions/sub_1"))
    await expect(c.delete("/customers/acme"))
    await expect(c.delete("/plans/basic"))
    assert_clean(state.contract_violations)


async def test_error_bodies_match_the_spec(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    await expect(checked.post("/events", json={"nothing": {}}), 400)
    await expect(checked.get("/plans", headers={"Authorization": "Bearer wrong"}), 401)
    await expect(checked.get("/plans/none"), 404)
    await expect(checked.post("/billable_metrics", json={"billable_metric": {"name": "x"}}), 422)

    requests = [v for v in state.contract_violations if v.startswith("request ")]
    assert len(requests) == 2, "the two malformed requests are reported"
    assert_clean([v for v in state.contract_violations if not v.startswith("request ")])


async def test_billing_endpoints_match_the_spec(
    checked: httpx.AsyncClient, state: EmulatorState, catalog_factory: Any
) -> None:
    c = checked
    await catalog_factory(c)
    await expect(
        c.post("/customers", json={"customer": {"external_id": "acme", "currency": "USD"}})
    )
    await expect(
        c.post(
            "/subscriptions",
            json={
                "subscription": {
                    "external_customer_id": "acme",
                    "plan_code": "pro",
                    "external_id": "sub_1",
                }
            },
        )
    )
    await expect(c.post("/events", json={"event": event("t1")}))
    await expect(
        c.get("/customers/acme/current_usage", params={"external_subscription_id": "sub_1"})
    )
    wallet = (
        await expect(
            c.post(
                "/wallets",
                json={
                    "wallet": {
                        "external_customer_id": "acme",
                        "currency": "USD",
                        "rate_amount": "1.0",
                        "name": "Prepaid",
                        "granted_credits": "10.0",
                    }
                },
            )
        )
    )["wallet"]
    await expect(c.get("/wallets", params={"external_customer_id": "acme"}))
    await expect(c.get("/customers/acme/wallets"))
    await expect(c.get(f"/wallets/{wallet['lago_id']}"))
    await expect(c.put(f"/wallets/{wallet['lago_id']}", json={"wallet": {"name": "Main"}}))
    top_up = await expect(
        c.post(
            "/wallet_transactions",
            json={
                "wallet_transaction": {
                    "wallet_id": wallet["lago_id"],
                    "paid_credits": "20.0",
                    "granted_credits": "5.0",
                }
            },
        )
    )
    await expect(c.get(f"/wallets/{wallet['lago_id']}/wallet_transactions"))
    credit_invoice = top_up["wallet_transactions"][0]["lago_invoice_id"]
    await expect(c.get("/invoices", params={"external_customer_id": "acme"}))
    await expect(c.get(f"/invoices/{credit_invoice}"))
    await expect(
        c.put(
            f"/invoices/{credit_invoice}",
            json={
                "invoice": {
                    "payment_status": "succeeded",
                    "metadata": [{"key": "ref", "value": "pi_1"}],
                }
            },
        )
    )
    await expect(c.post(f"/invoices/{credit_invoice}/download"))
    await _coupons(c)
    await _invoice_lifecycle(c, state)
    await _webhook_endpoints(c)
    await expect(c.delete(f"/wallets/{wallet['lago_id']}"))
    assert_clean(state.contract_violations)


async def _coupons(c: httpx.AsyncClient) -> None:
    await expect(
        c.post(
            "/coupons",
            json={
                "coupon": {
                    "name": "Five",
                    "code": "five",
                    "coupon_type": "fixed_amount",
                    "amount_cents": 500,
                    "amount_currency": "USD",
                    "frequency": "recurring",
                    "frequency_duration": 3,
                    "expiration": "no_expiration",
                    "reusable": False,
                }
            },
        )
    )
    await expect(
        c.post(
            "/coupons",
            json={
                "coupon": {
                    "name": "Ten",
                    "code": "ten",
                    "coupon_type": "percentage",
                    "percentage_rate": "10.0",
                    "frequency": "forever",
                    "expiration": "time_limit",
                    "expiration_at": "2099-01-01T00:00:00Z",
                }
            },
        )
    )
    await expect(c.get("/coupons"))
    await expect(c.get("/coupons/five"))
    await expect(c.put("/coupons/ten", json={"coupon": {"name": "Ten %"}}))
    applied = await expect(
        c.post(
            "/applied_coupons",
            json={"applied_coupon": {"external_customer_id": "acme", "coupon_code": "five"}},
        )
    )
    await expect(
        c.post(
            "/applied_coupons",
            json={"applied_coupon": {"external_customer_id": "acme", "coupon_code": "five"}},
        ),
        422,
    )
    await expect(
        c.post(
            "/applied_coupons",
            json={"applied_coupon": {"external_customer_id": "acme", "coupon_code": "none"}},
        ),
        404,
    )
    await expect(c.get("/applied_coupons", params={"external_customer_id": "acme"}))
    await expect(c.get("/customers/acme/applied_coupons"))
    applied_id = applied["applied_coupon"]["lago_id"]
    await expect(c.delete(f"/customers/acme/applied_coupons/{applied_id}"))
    await expect(c.delete("/coupons/ten"))


async def _invoice_lifecycle(c: httpx.AsyncClient, state: EmulatorState) -> None:
    draft = state.issue_invoice("acme", 10_000, status="draft")
    await expect(c.put(f"/invoices/{draft['lago_id']}/refresh"))
    await expect(c.put(f"/invoices/{draft['lago_id']}/finalize"))
    await expect(c.post(f"/invoices/{draft['lago_id']}/retry_payment"))
    await expect(
        c.put(f"/invoices/{draft['lago_id']}", json={"invoice": {"payment_status": "succeeded"}})
    )
    fee_id = state.invoices[draft["lago_id"]]["fees"][0]["lago_id"]
    note = await expect(
        c.post(
            "/credit_notes",
            json={
                "credit_note": {
                    "invoice_id": draft["lago_id"],
                    "reason": "other",
                    "refund_amount_cents": 100,
                    "credit_amount_cents": 0,
                    "items": [{"fee_id": fee_id, "amount_cents": 100}],
                }
            },
        )
    )
    await expect(c.get("/credit_notes"))
    await expect(c.get(f"/credit_notes/{note['credit_note']['lago_id']}"))
    unpaid = state.issue_invoice("acme", 300)
    await expect(c.post(f"/invoices/{unpaid['lago_id']}/void", json={}))


async def _webhook_endpoints(c: httpx.AsyncClient) -> None:
    endpoint = await expect(
        c.post(
            "/webhook_endpoints",
            json={
                "webhook_endpoint": {
                    "webhook_url": "https://gw.test/lago",
                    "signature_algo": "hmac",
                    "name": "gw",
                    "event_types": ["invoice.created"],
                }
            },
        )
    )
    await expect(c.get("/webhook_endpoints"))
    await expect(c.get(f"/webhook_endpoints/{endpoint['webhook_endpoint']['lago_id']}"))
    await expect(c.get("/webhooks/json_public_key"))
    await expect(c.delete(f"/webhook_endpoints/{endpoint['webhook_endpoint']['lago_id']}"))


async def test_emitted_webhooks_match_the_specs_webhooks_section(
    checked: httpx.AsyncClient, state: EmulatorState, catalog_factory: Any
) -> None:
    c = checked
    await catalog_factory(c)
    await expect(
        c.post(
            "/webhook_endpoints",
            json={
                "webhook_endpoint": {
                    "webhook_url": "https://gw.test/lago",
                    "signature_algo": "hmac",
                }
            },
        )
    )
    await expect(
        c.post("/customers", json={"customer": {"external_id": "acme", "currency": "USD"}})
    )
    await expect(c.post("/customers", json={"customer": {"external_id": "acme", "name": "Acme"}}))
    for plan in ("pro", "basic"):
        await expect(
            c.post(
                "/subscriptions",
                json={
                    "subscription": {
                        "external_customer_id": "acme",
                        "plan_code": plan,
                        "external_id": "sub_1",
                    }
                },
            )
        )
    await expect(c.delete("/subscriptions/sub_1", params={"status": "pending"}))
    await expect(c.delete("/subscriptions/sub_1"))
    await expect(
        c.post(
            "/wallets",
            json={
                "wallet": {
                    "external_customer_id": "acme",
                    "currency": "USD",
                    "rate_amount": "1.0",
                    "paid_credits": "5.0",
                }
            },
        )
    )
    credit_invoice = next(iter(state.invoices))
    await expect(
        c.put(f"/invoices/{credit_invoice}", json={"invoice": {"payment_status": "succeeded"}})
    )
    fee_id = state.invoices[credit_invoice]["fees"][0]["lago_id"]
    await expect(
        c.post(
            "/credit_notes",
            json={
                "credit_note": {
                    "invoice_id": credit_invoice,
                    "refund_amount_cents": 100,  # a credit invoice is refunded, never credited
                    "items": [{"fee_id": fee_id, "amount_cents": 100}],
                }
            },
        )
    )
    state.issue_invoice("acme", 100, status="draft")
    voided = state.issue_invoice("acme", 10_000)
    await expect(c.post(f"/invoices/{voided['lago_id']}/void", json={}))

    documented = {w.webhook_type for w in state.webhooks_pending} - {
        "wallet.created",
        "wallet.updated",
        "wallet.terminated",
    }
    problems = []
    for webhook in state.webhooks_pending:
        if webhook.webhook_type in documented:
            try:
                validate_webhook(webhook.webhook_type, webhook.headers, webhook.body)
            except ContractViolation as exc:
                problems.append(str(exc))
    assert len(documented) >= 12
    assert_clean(problems + state.contract_violations)
