from __future__ import annotations

from pydantic import BaseModel


class WebhookReceipt(BaseModel):
    """The acknowledgement: stored (or already stored) and to be handled in the background."""

    received: bool = True
    duplicate: bool


class InboundWebhookOut(BaseModel):
    """A stored inbound webhook, without its body. ``relayed_at`` is when its relay message
    was written (on receipt); ``status`` is about the gateway's own handlers only."""

    id: int
    source: str
    provider_event_id: str
    event_type: str
    status: str
    attempts: int
    received_at: float
    relayed_at: float | None
    handled_at: float | None
    next_attempt_at: float | None
    last_error: str | None
    handlers_done: list[str]


class InboundWebhookList(BaseModel):
    webhooks: list[InboundWebhookOut]
    next_cursor: str | None


class InboundWebhookResponse(BaseModel):
    webhook: InboundWebhookOut
