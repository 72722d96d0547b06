"""Wallets, wallet transactions, applied coupons and add-ons (audited writes), and catalog reads."""

from __future__ import annotations

from typing import Any

from gateway.billing.passthrough import Params, Write, read, refuse, segment, write
from gateway.billing.payloads import LagoInput, check, lago_uuid, required_query
from gateway.billing.schemas import (
    AddOnChanges,
    AddOnInput,
    AppliedCouponInput,
    WalletChanges,
    WalletInput,
    WalletTransactionInput,
)
from gateway.db import Database
from gateway.errors import GatewayError
from gateway.integrations.lago.client import LagoClient


class Billing:
    """Lago's wallets and coupons, passed through with validation and audit."""

    def __init__(self, database: Database, lago: LagoClient) -> None:
        self._database = database
        self._lago = lago

    async def _write(
        self,
        change: Write,
        method: str,
        path: str,
        *,
        root: str | None = None,
        params: dict[str, Any] | None = None,
        model: type[LagoInput] | None = None,
        ids: tuple[tuple[str, str], ...] = (),
    ) -> dict[str, Any]:
        try:
            for value, resource in ids:
                lago_uuid(value, resource)
            if model is not None and params is not None:
                check(model, params)
        except GatewayError as exc:
            raise await refuse(self._database, change, exc) from exc
        body = None if root is None else {root: params}
        return await write(self._database, self._lago, change, method, path, json=body)

    async def create_wallet(self, params: dict[str, Any], actor: str) -> dict[str, Any]:
        """A wallet for a customer, with optional initial paid and granted credits."""
        change = Write(actor, "wallets.create", _text(params.get("external_customer_id")))
        return await self._write(
            change, "POST", "/wallets", root="wallet", params=params, model=WalletInput
        )

    async def update_wallet(
        self, lago_id: str, params: dict[str, Any], actor: str
    ) -> dict[str, Any]:
        """Rename, change expiry or recurring rules."""
        change = Write(actor, "wallets.update", lago_id)
        path = f"/wallets/{segment(lago_id)}"
        return await self._write(
            change,
            "PUT",
            path,
            root="wallet",
            params=params,
            model=WalletChanges,
            ids=((lago_id, "wallet"),),
        )

    async def terminate_wallet(self, lago_id: str, actor: str) -> dict[str, Any]:
        """Terminate the wallet (its remaining credits are forfeited, as in Lago)."""
        change = Write(actor, "wallets.terminate", lago_id)
        path = f"/wallets/{segment(lago_id)}"
        return await self._write(change, "DELETE", path, ids=((lago_id, "wallet"),))

    async def create_wallet_transaction(self, params: dict[str, Any], actor: str) -> dict[str, Any]:
        """Top up (paid credits invoiced, granted credits free) or void credits."""
        change = Write(actor, "wallet_transactions.create", _text(params.get("wallet_id")))
        return await self._write(
            change,
            "POST",
            "/wallet_transactions",
            root="wallet_transaction",
            params=params,
            model=WalletTransactionInput,
        )

    async def apply_coupon(self, params: dict[str, Any], actor: str) -> dict[str, Any]:
        """Apply a coupon to a customer; Lago's refusals (unknown, expired, reused) pass through."""
        change = Write(
            actor,
            "applied_coupons.create",
            _text(params.get("external_customer_id")),
            {"coupon_code": params.get("coupon_code")} if params.get("coupon_code") else None,
        )
        return await self._write(
            change,
            "POST",
            "/applied_coupons",
            root="applied_coupon",
            params=params,
            model=AppliedCouponInput,
        )

    async def remove_coupon(
        self, external_customer_id: str, applied_coupon_id: str, actor: str
    ) -> dict[str, Any]:
        """Terminate an applied coupon."""
        change = Write(
            actor,
            "applied_coupons.delete",
            external_customer_id,
            {"applied_coupon_id": applied_coupon_id},
        )
        path = (
            f"/customers/{segment(external_customer_id)}"
            f"/applied_coupons/{segment(applied_coupon_id)}"
        )
        return await self._write(
            change, "DELETE", path, ids=((applied_coupon_id, "applied_coupon"),)
        )

    async def create_add_on(self, params: dict[str, Any], actor: str) -> dict[str, Any]:
        """An add-on (a priced item for one-off invoices), keyed by its code."""
        change = Write(actor, "add_ons.create", _text(params.get("code")))
        return await self._write(
            change, "POST", "/add_ons", root="add_on", params=params, model=AddOnInput
        )

    async def update_add_on(self, code: str, params: dict[str, Any], actor: str) -> dict[str, Any]:
        """Change an add-on's fields (its code too); invoices already issued keep theirs."""
        renamed = _text(params.get("code"))
        detail = {"code": renamed} if renamed and renamed != code else None
        change = Write(actor, "add_ons.update", code, detail)
        path = f"/add_ons/{segment(code)}"
        return await self._write(
            change, "PUT", path, root="add_on", params=params, model=AddOnChanges
        )

    async def delete_add_on(self, code: str, actor: str) -> dict[str, Any]:
        """Delete an add-on (Lago discards it: its code is free again)."""
        change = Write(actor, "add_ons.delete", code)
        return await self._write(change, "DELETE", f"/add_ons/{segment(code)}")

    async def wallets(self, query: Params) -> dict[str, Any]:
        """A customer's wallets (``external_customer_id`` is required, as in Lago)."""
        required_query(query, "external_customer_id")
        return await read(self._lago, "/wallets", query)

    async def wallet(self, wallet_id: str) -> dict[str, Any]:
        """One wallet (an id that is no UUID is Lago's 404 without asking Lago)."""
        return await read(self._lago, f"/wallets/{segment(lago_uuid(wallet_id, 'wallet'))}")

    async def wallet_transactions(self, wallet_id: str, query: Params) -> dict[str, Any]:
        """A wallet's transactions, with Lago's filters."""
        path = f"/wallets/{segment(lago_uuid(wallet_id, 'wallet'))}/wallet_transactions"
        return await read(self._lago, path, query)

    async def read(self, path: str, query: Params | None = None) -> dict[str, Any]:
        """Any other read, as Lago answers it."""
        return await read(self._lago, path, query)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
