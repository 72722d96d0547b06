from __future__ import annotations

from pydantic import BaseModel, Field


class PaymentLink(BaseModel):
    """A hosted Stripe Checkout page (payment mode) for one invoice."""

    invoice_id: str
    attempt: int
    url: str
    expires_at: float | None = Field(None, description="Unix seconds")


class PaymentLinkResponse(BaseModel):
    payment_link: PaymentLink


class CheckoutRequest(BaseModel):
    """Where Stripe sends the customer afterwards (default: GATEWAY_COLLECTION_RETURN_URL)."""

    success_url: str | None = None
    cancel_url: str | None = None


class CheckoutLink(BaseModel):
    id: str
    url: str | None
    expires_at: int | None = Field(None, description="Unix seconds")


class CheckoutResponse(BaseModel):
    checkout: CheckoutLink


class PortalRequest(BaseModel):
    return_url: str | None = None


class PortalLink(BaseModel):
    id: str
    url: str | None


class PortalResponse(BaseModel):
    portal: PortalLink
