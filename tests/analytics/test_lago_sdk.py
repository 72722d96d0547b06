"""``lago-python-client`` reads Lago's analytics through the gateway, unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError

from tests.analytics.support import seed
from tests.conftest import Gateway
from tests.support.served import call, served

__all__ = ["served"]


def _rows(answer: Any, root: str, *fields: str) -> list[tuple[Any, ...]]:
    return [tuple(getattr(row, f) for f in fields) for row in answer[root]]


async def test_the_sdk_reads_the_five_analytics_through_the_gateway(
    gateway: Gateway, served: str
) -> None:
    seeded = await seed(gateway)
    now, before = seeded.this_month, seeded.last_month
    client = Client(api_key=await gateway.key("billing:read"), api_url=served)

    gross = await call(client.gross_revenues.find_all)
    assert _rows(
        gross, "gross_revenues", "month", "currency", "amount_cents", "invoices_count"
    ) == [
        (before, "EUR", 2500, 1),
        (now, "EUR", 1000, 1),
        (now, "USD", 700, 1),
    ]
    collections = await call(client.invoice_collections.find_all)
    fields = ("month", "payment_status", "currency", "invoices_count", "amount_cents")
    assert _rows(collections, "invoice_collections", *fields) == [
        (before, "pending", "EUR", 1, 2500),
        (now, "pending", "EUR", 1, 1000),
        (now, "pending", "USD", 1, 700),
    ]
    mrrs = await call(client.mrrs.find_all)
    assert _rows(mrrs, "mrrs", "month", "currency", "amount_cents") == [
        (before, "EUR", 2000),
        (now, "EUR", 1000),
    ]
    usage = await call(client.invoiced_usages.find_all)
    assert _rows(usage, "invoiced_usages", "month", "code", "currency", "amount_cents") == [
        (before, "tokens", "EUR", 500)
    ]
    overdue = await call(client.overdue_balances.find_all)
    fields = ("month", "currency", "amount_cents", "lago_invoice_ids")
    assert _rows(overdue, "overdue_balances", *fields) == [
        (now, "EUR", 1000, [seeded.overdue_invoice])
    ]


async def test_the_sdk_passes_its_filters_and_needs_billing_read(
    gateway: Gateway, served: str
) -> None:
    seeded = await seed(gateway)
    client = Client(api_key=await gateway.key("billing:read"), api_url=served)

    gross = await call(client.gross_revenues.find_all, {"currency": "USD", "months": 1})
    assert _rows(gross, "gross_revenues", "currency", "amount_cents") == [("USD", 700)]
    mrrs = await call(client.mrrs.find_all, {"months": 1})
    assert _rows(mrrs, "mrrs", "month", "amount_cents") == [(seeded.this_month, 1000)]
    overdue = await call(client.overdue_balances.find_all, {"external_customer_id": "globex"})
    assert overdue["overdue_balances"] == []

    writer = Client(api_key=await gateway.key("billing:write"), api_url=served)
    with pytest.raises(LagoApiError) as refused:
        await call(writer.mrrs.find_all)
    assert refused.value.status_code == 403
