"""Lago's analytics specs, ported to the emulator: spec/requests/api/v1/analytics/* and the
``find_all_by`` examples of spec/models/analytics/{gross_revenue,invoice_collection,
invoiced_usage,mrr,overdue_balance}_spec.rb.

Each test names the spec and the ``context``/``it`` it ports. Exchanges are checked against
Lago's OpenAPI spec. "The organization created 3 months ago" is a customer made then (the
emulator's organization starts with its first record). Not ported: API key permissions, the
non-premium 403s (the emulator is premium), the caches (``cache_key``, ``expire_cache``: the
emulator computes every answer) and pay-in-advance fees outside invoices (it keeps none).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lago.emulator import EmulatorState, create_app
from lago.emulator.analytics_window import entity_id
from lago.emulator.customers import upsert_customer

pytestmark = pytest.mark.asyncio

NOW = datetime(2024, 4, 15, 12, tzinfo=UTC)
MONTHS = {n: f"2024-{4 - n:02d}-01T00:00:00.000Z" for n in range(4)}  # n months ago
AGO = {n: f"2024-{4 - n:02d}-15" for n in range(4)}  # a day n months ago


@pytest_asyncio.fixture
async def checked(
    state: EmulatorState, make_client: Any, require_spec: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator, every exchange checked; its organization was made 3 months ago."""
    state.clock = lambda: NOW - timedelta(days=91)
    upsert_customer(state, {"external_id": "acme", "currency": "EUR"})
    state.clock = lambda: NOW
    upsert_customer(state, {"external_id": "other", "billing_entity_code": "be2"})
    async with make_client(create_app(state, api_key="test-lago-key", validate=True)) as client:
        yield client
    assert state.contract_violations == []


def invoice(state: EmulatorState, cents: int, customer: str = "acme", **fields: Any) -> str:
    """A finalized EUR invoice of ``cents``, then ``fields`` stored over it."""
    issued = state.issue_invoice(customer, cents, currency=fields.pop("currency", "EUR"))
    state.invoices[issued["lago_id"]].update(fields)
    return str(issued["lago_id"])


async def rows(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"/analytics/{path}", params=params)
    assert response.status_code == 200, response.text
    (found,) = response.json().values()
    return list(found)


async def test_gross_revenue_with_no_invoice_is_empty(checked: httpx.AsyncClient) -> None:
    """gross_revenues_controller_spec.rb: it "returns the gross revenue" (no invoice)."""
    assert await rows(checked, "gross_revenue") == []


async def test_gross_revenue_per_month_currency_and_billing_entity(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """gross_revenue_spec.rb: "when no filters passed", it "returns gross revenues split per
    (month, currency, billing_entity_id)", then "when filtering by billing_entity_id"."""
    invoice(state, 1000, issuing_date=AGO[1])
    invoice(state, 2000, issuing_date=AGO[1], billing_entity_code="be2")
    invoice(state, 3000, issuing_date=AGO[2])
    invoice(state, 4000, issuing_date=AGO[2], billing_entity_code="be2")
    be1, be2 = entity_id(state, "default"), entity_id(state, "be2")

    def row(months: int, cents: float, entity: str) -> dict[str, Any]:
        return {
            "month": MONTHS[months],
            "amount_cents": cents,
            "currency": "EUR",
            "invoices_count": "1.0",
            "billing_entity_id": entity,
        }

    found = await rows(checked, "gross_revenue")
    assert sorted(found, key=lambda r: (r["month"], r["amount_cents"])) == [
        row(2, 3000.0, be1),
        row(2, 4000.0, be2),
        row(1, 1000.0, be1),
        row(1, 2000.0, be2),
    ]
    filtered = await rows(checked, "gross_revenue", billing_entity_code="default")
    assert filtered == [row(2, 3000.0, be1), row(1, 1000.0, be1)]


async def test_gross_revenue_splits_currencies_and_deducts_refunds(
    checked: httpx.AsyncClient, state: EmulatorState, lago: httpx.AsyncClient
) -> None:
    """gross_revenue_spec.rb: "when an organization has multiple billing entities with
    different currencies"; the ``refund_amount_cents`` of credit notes is deducted, and the
    currency is upper-cased (a lower-case one is outside the OpenAPI spec: unchecked)."""
    usd = invoice(state, 1000, issuing_date=AGO[1], currency="USD")
    invoice(state, 2000, issuing_date=AGO[1])
    state.credit_notes["cn"] = {"lago_invoice_id": usd, "refund_amount_cents": 250}
    found = await rows(checked, "gross_revenue")
    assert {(r["currency"], r["amount_cents"]) for r in found} == {("USD", 750.0), ("EUR", 2000.0)}
    assert [r["currency"] for r in await rows(lago, "gross_revenue", currency="usd")] == ["USD"]


async def test_gross_revenue_skips_drafts_self_billed_and_lost_disputes(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """gross_revenue.rb ``issued_invoices``: status finalized, not self-billed, no lost
    dispute; ``external_customer_id`` keeps one customer's invoices."""
    invoice(state, 1000, issuing_date=AGO[1])
    invoice(state, 2000, issuing_date=AGO[1], status="draft")
    invoice(state, 4000, issuing_date=AGO[1], self_billed=True)
    invoice(state, 8000, issuing_date=AGO[1], payment_dispute_lost_at="2024-03-20T00:00:00Z")
    invoice(state, 16000, "other", issuing_date=AGO[1])
    amounts = [r["amount_cents"] for r in await rows(checked, "gross_revenue")]
    assert sorted(amounts) == [1000.0, 16000.0]
    mine = await rows(checked, "gross_revenue", external_customer_id="acme")
    assert [r["amount_cents"] for r in mine] == [1000.0]


async def test_invoice_collection_of_a_new_organization(
    state: EmulatorState, make_client: Any, require_spec: None
) -> None:
    """invoice_collections_controller_spec.rb: it "returns the gross revenue": one row for
    the current month, of nulls."""
    state.clock = lambda: NOW
    async with make_client(create_app(state, api_key="k", validate=True)) as client:
        response = await client.get("/analytics/invoice_collection", headers=_auth("k"))
    assert response.json() == {
        "invoice_collections": [
            {
                "month": MONTHS[0],
                "payment_status": None,
                "invoices_count": 0,
                "amount_cents": 0.0,
                "currency": None,
            }
        ]
    }
    assert state.contract_violations == []


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _collection(months: int, cents: float | None = None) -> dict[str, Any]:
    if cents is None:
        return {
            "month": MONTHS[months],
            "payment_status": None,
            "invoices_count": 0,
            "amount_cents": 0.0,
            "currency": None,
        }
    return {
        "month": MONTHS[months],
        "payment_status": "pending",
        "invoices_count": 1,
        "amount_cents": cents,
        "currency": "EUR",
    }


async def test_invoice_collection_counts_finalized_invoices_every_month(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """invoice_collection_spec.rb: "with no arguments", it "returns the finalized invoices
    collections"; then "when billing_entity_id is provided"."""
    invoice(state, 100, issuing_date=AGO[2], status="pending")
    invoice(state, 200, issuing_date=AGO[2])
    invoice(state, 300, "other", issuing_date=AGO[1], status="pending")
    invoice(state, 400, "other", issuing_date=AGO[1])
    assert await rows(checked, "invoice_collection") == [
        _collection(3),
        _collection(2, 200.0),
        _collection(1, 400.0),
        _collection(0),
    ]
    assert await rows(checked, "invoice_collection", billing_entity_code="default") == [
        _collection(3),
        _collection(2, 200.0),
        _collection(1),
        _collection(0),
    ]


async def test_invoice_collection_ignores_the_tin_filter_over_rest(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """invoice_collection_spec.rb "when is_customer_tin_empty is true": only GraphQL passes
    that filter; InvoiceCollectionsController reads currency, months and billing entity."""
    invoice(state, 200, issuing_date=AGO[2])
    plain = await rows(checked, "invoice_collection")
    assert await rows(checked, "invoice_collection", is_customer_tin_empty="true") == plain


async def test_invoice_collection_by_payment_status_and_currency(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """invoice_collection.rb: grouped by payment status (ordered by it), ``currency`` keeps
    that currency's rows only, and ``months`` the last N months."""
    invoice(state, 100, issuing_date=AGO[1], payment_status="succeeded")
    invoice(state, 200, issuing_date=AGO[1], payment_status="failed")
    invoice(state, 400, issuing_date=AGO[1], currency="USD")
    found = await rows(checked, "invoice_collection", months="2")
    assert [(r["month"], r["payment_status"], r["currency"]) for r in found] == [
        (MONTHS[1], "failed", "EUR"),
        (MONTHS[1], "pending", "USD"),
        (MONTHS[1], "succeeded", "EUR"),
        (MONTHS[0], None, None),
    ]
    only_usd = await rows(checked, "invoice_collection", currency="USD")
    assert [(r["month"], r["amount_cents"]) for r in only_usd] == [(MONTHS[1], 400.0)]


async def test_invoiced_usage_per_metric_by_fee_month(
    checked: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    """invoiced_usages_controller_spec.rb (empty at first), then invoiced_usage_spec.rb
    "with no arguments" and "with billing_entity_id"."""
    assert await rows(checked, "invoiced_usage") == []
    response = await checked.post(
        "/subscriptions",
        json={
            "subscription": {
                "external_customer_id": "acme",
                "plan_code": "basic",
                "external_id": "s1",
            }
        },
    )
    sub = response.json()["subscription"]["lago_id"]

    def fees(*cents: int, at: str) -> list[dict[str, Any]]:
        item = {"type": "charge", "code": "api_calls"}
        made = f"{at}T00:00:00Z"
        return [
            {"amount_cents": c, "item": item, "lago_subscription_id": sub, "created_at": made}
            for c in cents
        ]

    state.issue_invoice("acme", 0, currency="EUR", fees=fees(100, 200, at=AGO[2]))
    second = state.issue_invoice("acme", 0, currency="EUR", fees=fees(300, 400, at=AGO[1]))
    state.invoices[second["lago_id"]]["billing_entity_code"] = "be2"
    usage = [
        {"month": MONTHS[1], "code": "api_calls", "currency": "EUR", "amount_cents": 700.0},
        {"month": MONTHS[2], "code": "api_calls", "currency": "EUR", "amount_cents": 300.0},
    ]
    assert await rows(checked, "invoiced_usage") == usage
    assert await rows(checked, "invoiced_usage", billing_entity_code="default") == usage[1:]
