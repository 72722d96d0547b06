"""Lago's MRR and overdue balance specs, ported to the emulator:
spec/requests/api/v1/analytics/{mrrs,overdue_balances}_controller_spec.rb and the
``find_all_by`` examples of spec/models/analytics/{mrr,overdue_balance}_spec.rb, plus the
spreading of app/models/analytics/mrr.rb (quarterly, semiannual, weekly), which no Lago
spec covers.

Fixtures (``checked``, ``invoice``, ``rows``) come from test_analytics_lago_specs.py: now is
2024-04-15 and the organization was made in January.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState, create_app
from lago.emulator.analytics_window import entity_id
from lago.emulator.customers import upsert_customer
from tests.lago.test_analytics_lago_specs import AGO, MONTHS, checked, invoice, rows

pytestmark = pytest.mark.asyncio
__all__ = ["checked"]


async def _plan(client: httpx.AsyncClient, code: str, interval: str, advance: bool) -> None:
    plan = {"name": code, "code": code, "interval": interval, "amount_cents": 3000}
    plan |= {"amount_currency": "EUR", "pay_in_advance": advance}
    assert (await client.post("/plans", json={"plan": plan})).status_code == 200


async def _subscribe(client: httpx.AsyncClient, plan: str) -> str:
    sub = {"external_customer_id": "acme", "plan_code": plan, "external_id": f"sub_{plan}"}
    response = await client.post("/subscriptions", json={"subscription": sub})
    assert response.status_code == 200, response.text
    return str(response.json()["subscription"]["lago_id"])


def _fee(sub: str, cents: int, period: tuple[str, str] | None = None, **extra: Any) -> Any:
    fee = {"amount_cents": cents, "item": {"type": "subscription"}, "lago_subscription_id": sub}
    if period is not None:
        fee |= {"from_date": f"{period[0]}T00:00:00Z", "to_date": f"{period[1]}T23:59:59Z"}
    return fee | extra


def _issue(state: EmulatorState, fees: list[Any], issued: str, **fields: Any) -> None:
    made = state.issue_invoice("acme", 0, currency="EUR", fees=fees)
    state.invoices[made["lago_id"]].update(issuing_date=issued, **fields)


async def _amounts(client: httpx.AsyncClient, **params: Any) -> list[tuple[str, Any]]:
    return [(r["month"], r["amount_cents"]) for r in await rows(client, "mrr", **params)]


async def test_mrr_of_a_new_organization(
    state: EmulatorState, make_client: Any, require_spec: None
) -> None:
    """mrrs_controller_spec.rb: it "returns the mrr": the current month, of nulls."""
    state.clock = lambda: datetime(2024, 4, 15, tzinfo=UTC)
    async with make_client(create_app(state, api_key="k", validate=True)) as client:
        response = await client.get("/analytics/mrr", headers={"Authorization": "Bearer k"})
    assert response.json() == {
        "mrrs": [{"month": MONTHS[0], "amount_cents": None, "currency": None}]
    }
    assert state.contract_violations == []


async def test_mrr_of_monthly_plans_with_taxes(
    checked: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    """mrr_spec.rb: "with no arguments", it "returns all MRRs"; "with billing_entity_id"."""
    sub = await _subscribe(checked, "basic")
    fees = [_fee(sub, 100, taxes_amount_cents=10), _fee(sub, 200, taxes_amount_cents=20)]
    _issue(state, fees, AGO[2])
    fees = [_fee(sub, 300, taxes_amount_cents=30), _fee(sub, 400, taxes_amount_cents=40)]
    _issue(state, fees, AGO[1], billing_entity_code="be2")
    assert await _amounts(checked) == [
        (MONTHS[3], None),
        (MONTHS[2], "330.0"),
        (MONTHS[1], "770.0"),
        (MONTHS[0], None),
    ]
    assert await _amounts(checked, billing_entity_code="default") == [
        (MONTHS[3], None),
        (MONTHS[2], "330.0"),
        (MONTHS[1], None),
        (MONTHS[0], None),
    ]
    assert await _amounts(checked, currency="EUR", months="2") == [(MONTHS[1], "770.0")]
    assert await _amounts(checked, currency="USD") == []


async def test_mrr_spreads_a_quarter_in_arrears_backwards(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """mrr.rb ``quarterly_arrears``: billed_months = 90 d 23:59 / 30.44 = 2.9895; an even
    share for the issuing month and the one before, the rest two months back."""
    await _plan(checked, "quarter", "quarterly", advance=False)
    sub = await _subscribe(checked, "quarter")
    _issue(state, [_fee(sub, 3000, ("2024-01-01", "2024-03-31"))], "2024-04-01")
    found = dict(await _amounts(checked))
    assert found[MONTHS[3]] is None
    assert round(float(found[MONTHS[2]]), 4) == 992.9517
    assert round(float(found[MONTHS[1]]), 4) == round(float(found[MONTHS[0]]), 4) == 1003.5241
    assert sum(Decimal(found[m]) for m in (MONTHS[2], MONTHS[1], MONTHS[0])) == Decimal(3000)


async def test_mrr_spreads_a_quarter_in_advance_forwards(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """mrr.rb ``quarterly_advance``: issued 15 February, the first month holds 15/29 of a
    share, the last the rest of the fee."""
    await _plan(checked, "quarter_in_advance", "quarterly", advance=True)
    sub = await _subscribe(checked, "quarter_in_advance")
    _issue(state, [_fee(sub, 3000, ("2024-02-15", "2024-05-14"))], "2024-02-15")
    found = [(m, round(float(a), 4)) for m, a in await _amounts(checked, months="3")]
    assert found == [(MONTHS[2], 524.8316), (MONTHS[1], 1014.6745), (MONTHS[0], 1460.4939)]


async def test_mrr_copies_lagos_semiannual_advance_case(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """mrr.rb ``semiannual_advance``: the months CEIL-2..CEIL-4 also take ``amount - share *
    (FLOOR - k + ratio)``, as Lago's CASE does (so they add up to more than the fee)."""
    await _plan(checked, "half", "semiannual", advance=True)
    sub = await _subscribe(checked, "half")
    _issue(state, [_fee(sub, 6000, ("2024-01-01", "2024-06-30"))], "2024-01-01")
    found = [round(float(a), 4) for _, a in await _amounts(checked)]
    assert found == [1003.5203, 1003.5203, 3992.9594, 2989.4391]


async def test_mrr_of_weekly_plans_is_the_mean_times_4_33(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """mrr.rb ``weekly``: per month and currency, SUM / COUNT * 4.33."""
    await _plan(checked, "week", "weekly", advance=False)
    sub = await _subscribe(checked, "week")
    _issue(state, [_fee(sub, 100)], "2024-03-04")
    _issue(state, [_fee(sub, 300)], "2024-03-11")
    assert await _amounts(checked, months="2") == [(MONTHS[1], "866.0"), (MONTHS[0], None)]


async def test_mrr_skips_other_fees_and_uncounted_invoices(
    checked: httpx.AsyncClient, state: EmulatorState, catalog: dict[str, str]
) -> None:
    """mrr.rb ``invoice_details``: subscription fees only (``fee_type = 2``), of finalized
    invoices, not self-billed, without a lost dispute; coupons are deducted."""
    sub = await _subscribe(checked, "basic")
    _issue(state, [_fee(sub, 500, precise_coupons_amount_cents="50.5")], AGO[0])
    _issue(state, [_fee(sub, 1, item={"type": "charge"})], AGO[0])
    _issue(state, [_fee(sub, 2)], AGO[0], status="draft")
    _issue(state, [_fee(sub, 4)], AGO[0], self_billed=True)
    _issue(state, [_fee(sub, 8)], AGO[0], payment_dispute_lost_at="2024-04-16T00:00:00Z")
    assert await _amounts(checked, months="1") == [(MONTHS[0], "449.5")]


async def test_overdue_balance_request_spec(
    state: EmulatorState, make_client: Any, require_spec: None
) -> None:
    """overdue_balances_controller_spec.rb: it "returns the overdue balance" (organization
    made 2023-11-01, now 2024-01-15)."""
    state.clock = lambda: datetime(2023, 11, 1, tzinfo=UTC)
    upsert_customer(state, {"external_id": "acme", "currency": "EUR"})
    state.clock = lambda: datetime(2024, 1, 15, tzinfo=UTC)
    invoice(state, 500)
    i1 = invoice(state, 1000, payment_overdue=True, payment_due_date="2023-11-15")
    i2 = invoice(state, 2000, payment_overdue=True, payment_due_date="2024-01-10")
    i3 = invoice(state, 3000, payment_overdue=True, payment_due_date="2024-01-14")
    async with make_client(create_app(state, api_key="k", validate=True)) as client:
        response = await client.get(
            "/analytics/overdue_balance", headers={"Authorization": "Bearer k"}
        )
    found = response.json()["overdue_balances"]
    entity = entity_id(state, "default")
    assert found[0] == {
        "month": "2023-11-01T00:00:00.000Z",
        "amount_cents": "1000.0",
        "currency": "EUR",
        "lago_invoice_ids": [i1],
        "billing_entity_id": entity,
    }
    assert sorted(found[1].pop("lago_invoice_ids")) == sorted([i2, i3])
    assert found[1:] == [
        {
            "month": "2024-01-01T00:00:00.000Z",
            "amount_cents": "5000.0",
            "currency": "EUR",
            "billing_entity_id": entity,
        }
    ]
    assert state.contract_violations == []


def _overdue(state: EmulatorState, cents: int, months: int, **fields: Any) -> str:
    return invoice(state, cents, payment_overdue=True, payment_due_date=AGO[months], **fields)


async def _balances(client: httpx.AsyncClient, **params: Any) -> list[tuple[Any, ...]]:
    found = await rows(client, "overdue_balance", **params)
    return [(r["month"], r["amount_cents"], r["lago_invoice_ids"]) for r in found]


async def test_overdue_balance_per_due_month_and_billing_entity(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """overdue_balance_spec.rb: "with no arguments"; "when overdue invoices share the same
    (month, currency) across billing entities"; "with billing entity id"."""
    i1 = _overdue(state, 100, 1)
    invoice(state, 200, payment_due_date=AGO[1], billing_entity_code="be2")
    invoice(state, 300, payment_due_date=AGO[2])
    i4 = _overdue(state, 400, 2, billing_entity_code="be2")
    be1, be2 = entity_id(state, "default"), entity_id(state, "be2")
    found = await rows(checked, "overdue_balance")
    assert [(r["month"], r["amount_cents"], r["billing_entity_id"]) for r in found] == [
        (MONTHS[2], "400.0", be2),
        (MONTHS[1], "100.0", be1),
    ]
    assert [r["lago_invoice_ids"] for r in found] == [[i4], [i1]]
    cross = _overdue(state, 500, 1, billing_entity_code="be2")
    found = await rows(checked, "overdue_balance")
    last_month = {r["billing_entity_id"]: r for r in found if r["month"] == MONTHS[1]}
    assert last_month[be1]["amount_cents"] == "100.0"
    assert (last_month[be2]["amount_cents"], last_month[be2]["lago_invoice_ids"]) == (
        "500.0",
        [cross],
    )
    assert await _balances(checked, billing_entity_code="default") == [(MONTHS[1], "100.0", [i1])]


async def test_overdue_balance_deducts_payments_and_finalized_offsets(
    checked: httpx.AsyncClient, state: EmulatorState
) -> None:
    """overdue_balance_spec.rb "with special invoice scenarios": finalized credit notes'
    offsets and paid amounts are deducted; draft credit notes, self-billed and deleted
    invoices are not counted."""
    _overdue(state, 100, 1)
    credited = _overdue(state, 1000, 1)
    state.credit_notes["cn"] = {"lago_invoice_id": credited, "offset_amount_cents": 300}
    assert (await _balances(checked))[0][1] == "800.0"
    state.credit_notes["cn"]["status"] = "draft"
    assert (await _balances(checked))[0][1] == "1100.0"
    state.invoices[credited]["total_paid_amount_cents"] = 400
    assert (await _balances(checked))[0][1] == "700.0"
    _overdue(state, 5000, 1, self_billed=True)
    _overdue(state, 5000, 1, status="deleted")
    assert (await _balances(checked))[0][1] == "700.0"


async def test_overdue_balance_filters(checked: httpx.AsyncClient, state: EmulatorState) -> None:
    """overdue_balance_spec.rb "with filters": currency, external_customer_id, and a deleted
    customer (none of its invoices)."""
    mine = _overdue(state, 100, 1)
    usd = _overdue(state, 500, 1, currency="USD")
    theirs = _overdue(state, 999, 1, customer="other")
    assert await _balances(checked, currency="USD") == [(MONTHS[1], "500.0", [usd])]
    by_customer = await _balances(checked, external_customer_id="acme")
    assert sorted(i for _, _, ids in by_customer for i in ids) == sorted([mine, usd])
    assert theirs not in str(by_customer)
    assert (await checked.delete("/customers/other")).status_code == 200
    assert await _balances(checked, external_customer_id="other") == []
    assert len(await _balances(checked)) == 3
