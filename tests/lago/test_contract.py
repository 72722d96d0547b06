"""Every emulator endpoint, driven through the contract recorder: the emulator is Lago-shaped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lago.emulator import EmulatorState, create_app

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


async def expect(response: httpx.Awaitable[httpx.Response] | Any, status: int = 200) -> Any:
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
