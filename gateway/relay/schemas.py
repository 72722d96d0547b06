"""Request and response shapes of the relay API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class EndpointCreate(BaseModel):
    url: str = Field(max_length=2048, description="http(s); public addresses only by default")
    description: str = Field("", max_length=1000)
    filter_types: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Event types to receive; wildcards: `invoice.*`, `payment_intent.*`, `*`",
    )
    enabled: bool = True


class EndpointUpdate(BaseModel):
    """Only the fields given change."""

    url: str | None = Field(None, max_length=2048)
    description: str | None = Field(None, max_length=1000)
    filter_types: list[str] | None = None
    enabled: bool | None = None


class Endpoint(BaseModel):
    id: str
    url: str
    description: str
    filter_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: str | None = Field(description="Since when every attempt has failed")
    created_at: str
    updated_at: str


class EndpointResponse(BaseModel):
    endpoint: Endpoint


class EndpointCreated(BaseModel):
    endpoint: Endpoint
    secret: str = Field(description="The `whsec_` signing secret (also at /secret)")


class EndpointsResponse(BaseModel):
    endpoints: list[Endpoint]


class EndpointSecret(BaseModel):
    secret: str
    previous_secret: str | None = Field(description="Still signing until it expires")
    previous_secret_expires_at: str | None


class Delivery(BaseModel):
    endpoint_id: str
    status: str = Field(description="pending, delivered, failed or cancelled")
    attempts: int = Field(description="Attempts in the current schedule")
    next_attempt_at: str | None
    last_attempt_at: str | None
    delivered_at: str | None
    last_status: int | None
    last_error: str | None


class Attempt(BaseModel):
    endpoint_id: str
    attempt: int
    attempted_at: str
    outcome: str = Field(description="succeeded or failed")
    status: int | None = Field(description="The subscriber's HTTP status, if it answered")
    latency_ms: float
    response_body: str | None = Field(description="The first 2 KB of the answer")
    error: str | None


class Message(BaseModel):
    id: str = Field(description="Stable: the `webhook-id` of every attempt")
    type: str
    source: str
    created_at: str
    received_at: str
    status: str = Field(description="pending, failed, delivered, cancelled or no_endpoints")
    deliveries: list[Delivery]


class MessageDetail(Message):
    payload: dict[str, Any] = Field(description="The envelope exactly as delivered")
    attempts: list[Attempt]


class MessageResponse(BaseModel):
    message: MessageDetail


class MessagePage(BaseModel):
    messages: list[Message]
    next_cursor: str | None


class Redelivered(BaseModel):
    message_id: str
    endpoint_ids: list[str]


class Recovered(BaseModel):
    endpoint_id: str
    message_ids: list[str]
