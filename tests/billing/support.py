"""Helpers for the Lago-surface tests: a seeded catalog and the audit rows of a test."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from gateway.audit.models import AuditEntry
from gateway.customers.models import CustomerLink
from tests.conftest import Gateway

BASIC, PREMIUM = "basic", "premium"


async def seed_catalog(gw: Gateway) -> None:
    """A metric, two monthly plans (basic < premium) and a one-off coupon, straight in Lago."""
    lago = gw.runtime.lago
    metric = await lago.call(
        "POST",
        "/billable_metrics",
        json={
            "billable_metric": {
                "name": "Photos",
                "code": "photo_generation",
                "aggregation_type": "count_agg",
            }
        },
    )
    metric_id = metric["billable_metric"]["lago_id"]
    for code, cents in ((BASIC, 999), (PREMIUM, 2999)):
        await lago.call(
            "POST",
            "/plans",
            json={
                "plan": {
                    "name": code.title(),
                    "code": code,
                    "interval": "monthly",
                    "amount_cents": cents,
                    "amount_currency": "USD",
                    "pay_in_advance": False,
                    "charges": [
                        {
                            "billable_metric_id": metric_id,
                            "charge_model": "standard",
                            "properties": {"amount": "0.05"},
                        }
                    ],
                }
            },
        )
    await lago.call(
        "POST",
        "/coupons",
        json={
            "coupon": {
                "name": "Welcome",
                "code": "welcome",
                "coupon_type": "fixed_amount",
                "amount_cents": 500,
                "amount_currency": "USD",
                "frequency": "once",
                "expiration": "no_expiration",
                "reusable": False,
            }
        },
    )


async def audit_rows(gw: Gateway, action: str | None = None) -> list[AuditEntry]:
    """The audit rows written so far (of one action), oldest first."""
    async with gw.runtime.database.session() as session:
        query = select(AuditEntry).order_by(AuditEntry.id)  # type: ignore[arg-type]
        rows = list((await session.exec(query)).all())
    return [row for row in rows if action is None or row.action == action]


async def links(gw: Gateway) -> dict[str, CustomerLink]:
    """The customer_links rows by external id."""
    async with gw.runtime.database.session() as session:
        rows = (await session.exec(select(CustomerLink))).all()
    return {row.external_id: row for row in rows}


def outcomes(rows: list[AuditEntry]) -> list[tuple[str, str, str | None, int | None]]:
    """(action, outcome, upstream, status) of each row."""
    return [(r.action, r.outcome, r.upstream, r.status) for r in rows]


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
