"""The holds API's bodies, for the OpenAPI document (the service checks every field)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Hold(BaseModel):
    external_subscription_id: str | None = Field(
        default=None, description="the subscription; or external_customer_id (its one active)"
    )
    external_customer_id: str | None = None
    code: str = Field(description="the billable metric the generation's event will carry")
    transaction_id: str = Field(description="the event's id: a resend answers the same hold")
    properties: dict[str, Any] | None = None
    expires_in: int | None = Field(
        default=None, ge=1, le=86_400, description="seconds (default 600) until released"
    )


class HoldIn(BaseModel):
    hold: Hold


class Capture(BaseModel):
    properties: dict[str, Any] | None = Field(
        default=None, description="the event's final properties (a video's real seconds)"
    )


class CaptureIn(BaseModel):
    hold: Capture | None = None
