"""What the gateway checks in wallet, coupon and add-on bodies before Lago sees them."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel

from gateway.billing.payloads import Id, LagoInput

# Lago takes credit amounts as decimal strings ("10.0"); numbers are accepted too.
Credits = Decimal


class WalletInput(LagoInput):
    external_customer_id: Id
    currency: Id
    rate_amount: Credits
    name: str | None = None
    code: str | None = None
    paid_credits: Credits | None = None
    granted_credits: Credits | None = None
    expiration_at: str | None = None
    invoice_requires_successful_payment: bool | None = None


class WalletCreate(BaseModel):
    """``POST /api/v1/wallets``."""

    wallet: WalletInput


class WalletChanges(LagoInput):
    name: str | None = None
    code: str | None = None
    expiration_at: str | None = None
    invoice_requires_successful_payment: bool | None = None


class WalletUpdate(BaseModel):
    """``PUT /api/v1/wallets/{lago_id}``."""

    wallet: WalletChanges


class WalletTransactionInput(LagoInput):
    wallet_id: UUID
    paid_credits: Credits | None = None
    granted_credits: Credits | None = None
    voided_credits: Credits | None = None


class WalletTransactionCreate(BaseModel):
    """``POST /api/v1/wallet_transactions``: a top-up (paid, granted) or a void."""

    wallet_transaction: WalletTransactionInput


class AppliedCouponInput(LagoInput):
    external_customer_id: Id
    coupon_code: Id
    amount_cents: int | None = None
    amount_currency: str | None = None
    percentage_rate: Credits | None = None
    frequency: str | None = None
    frequency_duration: int | None = None


class AppliedCouponCreate(BaseModel):
    """``POST /api/v1/applied_coupons``."""

    applied_coupon: AppliedCouponInput


class AddOnInput(LagoInput):
    name: Id
    code: Id
    amount_cents: int
    amount_currency: Id
    invoice_display_name: str | None = None
    description: str | None = None
    tax_codes: list[str] | None = None


class AddOnCreate(BaseModel):
    """``POST /api/v1/add_ons``: a one-off charge's template (name, code, default price)."""

    add_on: AddOnInput


class AddOnChanges(LagoInput):
    name: Id | None = None
    code: Id | None = None
    amount_cents: int | None = None
    amount_currency: Id | None = None
    invoice_display_name: str | None = None
    description: str | None = None
    tax_codes: list[str] | None = None


class AddOnUpdate(BaseModel):
    """``PUT /api/v1/add_ons/{code}``: the fields given change."""

    add_on: AddOnChanges
