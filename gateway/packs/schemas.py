from __future__ import annotations

from pydantic import BaseModel, Field


class PromoCode(BaseModel):
    """``POST /gateway/customers/{external_id}/promo-codes`` body: the coupon's code."""

    code: str = Field(min_length=1, max_length=255)
