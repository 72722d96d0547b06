"""The analytics routes: scope, query pass-through, figures as numbers, Lago's errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.analytics.service import number
from tests.analytics.support import seed
from tests.conftest import LAGO_KEY, Gateway

ROUTES = ("gross_revenue", "invoice_collection", "invoiced_usage", "mrr", "overdue_balance")


async def _get(gw: Gateway, route: str, headers: dict[str, str], **params: Any) -> httpx.Response:
    return await gw.client.get(f"/api/v1/analytics/{route}", headers=headers, params=params)


async def _lago(gw: Gateway, route: str, **params: Any) -> Any:
    """What Lago itself answers (the emulator, called directly)."""
    transport = httpx.ASGITransport(app=gw.lago_app)
    headers = {"Authorization": f"Bearer {LAGO_KEY}"}
    async with httpx.AsyncClient(transport=transport, headers=headers) as client:
        return (await client.get(f"http://lago/api/v1/analytics/{route}", params=params)).json()


async def test_every_route_needs_billing_read(gateway: Gateway) -> None:
    writer = await gateway.headers("billing:write", "events:write")
    reader = await gateway.headers("billing:read")
    for route in ROUTES:
        refused = await _get(gateway, route, writer)
        assert refused.status_code == 403, route
        assert (await _get(gateway, route, {})).status_code == 401, route
        assert (await _get(gateway, route, reader)).status_code == 200, route
    assert gateway.emulator.requests_by_status == {200: len(ROUTES)}
    empty = (await _get(gateway, "mrr", reader)).json()["mrrs"]
    assert [(r["amount_cents"], r["currency"]) for r in empty] == [(None, None)]


async def test_filters_pass_through_as_lago_takes_them(gateway: Gateway) -> None:
    seeded = await seed(gateway)
    reader = await gateway.headers("billing:read")
    lower = (await _get(gateway, "invoice_collection", reader, currency="usd")).json()
    assert [r["currency"] for r in lower["invoice_collections"]] == ["USD"]
    recent = (await _get(gateway, "invoice_collection", reader, months=1)).json()
    assert {r["month"] for r in recent["invoice_collections"]} == {seeded.this_month}
    mine = (await _get(gateway, "gross_revenue", reader, external_customer_id="globex")).json()
    assert [r["amount_cents"] for r in mine["gross_revenues"]] == [700]
    nobody = await _get(gateway, "overdue_balance", reader, external_customer_id="globex")
    assert nobody.json() == {"overdue_balances": []}
    # An unknown billing entity code finds no entity in Lago, so it filters nothing.
    unknown = await _get(gateway, "mrr", reader, billing_entity_code="nope")
    default = await _get(gateway, "mrr", reader, billing_entity_code="default")
    assert unknown.json() == default.json() == await _numbers(gateway, "mrr")
    assert (await _get(gateway, "mrr", reader, months="soon")).status_code == 422


async def _numbers(gw: Gateway, route: str) -> Any:
    answer = await _lago(gw, route)
    for row in answer[f"{route}s"]:
        if row["amount_cents"] is not None:
            row["amount_cents"] = number(row["amount_cents"])
    return answer


async def test_figures_are_numbers_where_lago_sends_decimal_strings(gateway: Gateway) -> None:
    seeded = await seed(gateway)
    reader = await gateway.headers("billing:read")
    lago = (await _lago(gateway, "overdue_balance"))["overdue_balances"]
    mine = (await _get(gateway, "overdue_balance", reader)).json()["overdue_balances"]
    assert [r["amount_cents"] for r in lago] == ["1000.0"]
    assert [r["amount_cents"] for r in mine] == [1000]
    assert [r["lago_invoice_ids"] for r in mine] == [[seeded.overdue_invoice]]
    gross = (await _get(gateway, "gross_revenue", reader, currency="USD")).json()
    assert [(r["amount_cents"], r["invoices_count"]) for r in gross["gross_revenues"]] == [(700, 1)]
    # The organization began last month: three months back shows two.
    mrrs = (await _get(gateway, "mrr", reader, months=3)).json()["mrrs"]
    assert [r["amount_cents"] for r in mrrs] == [2000, 1000]


def test_number_keeps_fractions_and_what_is_not_a_figure() -> None:
    assert number("1003.5241416677477") == pytest.approx(1003.5241416677477)
    assert (number("770.0"), number(2000.0), number(3), number(None)) == (770, 2000, 3, None)
    assert (number("n/a"), number("NaN"), number(True)) == ("n/a", "NaN", True)


async def test_lago_unavailable_is_503(gateway: Gateway) -> None:
    reader = await gateway.headers("billing:read")
    gateway.emulator.faults.error_rate = 1.0
    answer = await _get(gateway, "mrr", reader)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]


async def test_a_fraction_of_a_quarterly_fee_is_a_json_number(gateway: Gateway) -> None:
    seeded = await seed(gateway)
    lago = gateway.runtime.lago
    plan = {"name": "Quarter", "code": "quarter", "interval": "quarterly", "amount_cents": 3000}
    plan |= {"amount_currency": "EUR", "pay_in_advance": False}
    await lago.call("POST", "/plans", json={"plan": plan})
    subscription = {"external_customer_id": "acme", "plan_code": "quarter", "external_id": "q"}
    made = await lago.call("POST", "/subscriptions", json={"subscription": subscription})
    fee = {"amount_cents": 3000, "item": {"type": "subscription"}}
    fee |= {"lago_subscription_id": made["subscription"]["lago_id"]}
    fee |= {"from_date": "2024-01-01T00:00:00Z", "to_date": "2024-03-31T23:59:59Z"}
    gateway.emulator.issue_invoice("acme", 0, "EUR", fees=[fee])
    reader = await gateway.headers("billing:read")

    raw = {r["month"]: r["amount_cents"] for r in (await _lago(gateway, "mrr"))["mrrs"]}
    mine = (await _get(gateway, "mrr", reader)).json()["mrrs"]
    # 3000 over 2.9895 billed months, in arrears: a share this month and one the month before.
    assert raw[seeded.this_month].startswith("2003.524141")
    assert [(r["month"], r["amount_cents"]) for r in mine] == [
        (seeded.last_month, pytest.approx(3003.5241417, abs=1e-6)),
        (seeded.this_month, pytest.approx(2003.5241417, abs=1e-6)),
    ]
    assert all(isinstance(r["amount_cents"], float) for r in mine)
