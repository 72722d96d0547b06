from __future__ import annotations

from sqlmodel import select

from gateway.audit.models import AuditEntry
from tests.conftest import Gateway
from tests.packs.conftest import subscribe


async def _apply(gw: Gateway, customer: str, code: str) -> tuple[int, dict[str, object]]:
    response = await gw.client.post(
        f"/gateway/customers/{customer}/promo-codes",
        json={"code": code},
        headers=await gw.headers("billing:write"),
    )
    return response.status_code, response.json()


async def test_a_promo_code_applies_its_coupon_and_is_audited(shop: Gateway) -> None:
    await subscribe(shop, "alice", "basic_monthly")

    status, body = await _apply(shop, "alice", "WELCOME20")

    assert status == 200
    assert body["applied_coupon"]["coupon_code"] == "WELCOME20"  # type: ignore[index]
    [applied] = shop.emulator.applied_coupons.values()
    assert applied["external_customer_id"] == "alice"
    async with shop.runtime.database.session() as session:
        audit = (
            await session.exec(
                select(AuditEntry).where(AuditEntry.action == "packs.promo_code.apply")
            )
        ).one()
    assert (audit.outcome, audit.target, audit.detail) == (
        "success",
        "alice",
        {"code": "WELCOME20"},
    )


async def test_an_unknown_promo_code_is_404(shop: Gateway) -> None:
    await subscribe(shop, "bob", "basic_monthly")

    status, body = await _apply(shop, "bob", "NOPE")

    assert status == 404
    assert body["code"] == "promo_code_not_found"
    assert shop.emulator.applied_coupons == {}


async def test_a_promo_code_already_applied_is_422_with_lagos_reason(shop: Gateway) -> None:
    await subscribe(shop, "carol", "basic_monthly")
    await _apply(shop, "carol", "FIVEOFF")

    status, body = await _apply(shop, "carol", "FIVEOFF")

    assert status == 422
    assert body["code"] == "promo_code_already_applied"
    assert body["error_details"] == {"coupon": ["coupon_is_not_reusable"]}
    assert len(shop.emulator.applied_coupons) == 1
    async with shop.runtime.database.session() as session:
        outcomes = (
            await session.exec(
                select(AuditEntry.outcome).where(AuditEntry.action == "packs.promo_code.apply")
            )
        ).all()
    assert sorted(outcomes) == ["rejected", "success"]


async def test_an_expired_promo_code_is_422(shop: Gateway) -> None:
    await subscribe(shop, "dan", "basic_monthly")
    shop.emulator.coupons["LAUNCH15"]["expiration_at"] = "2020-01-01T00:00:00Z"

    status, body = await _apply(shop, "dan", "LAUNCH15")

    assert status == 422
    assert body["code"] == "promo_code_expired"
    assert shop.emulator.applied_coupons == {}  # Lago would still have applied it


async def test_a_terminated_promo_code_is_422_expired(shop: Gateway) -> None:
    await subscribe(shop, "erin", "basic_monthly")
    shop.emulator.coupons["LAUNCH15"]["terminated_at"] = "2020-01-01T00:00:00Z"

    status, body = await _apply(shop, "erin", "LAUNCH15")

    assert status == 422
    assert body["code"] == "promo_code_expired"
    assert shop.emulator.applied_coupons == {}
