from __future__ import annotations

from pydantic import BaseModel


class WebhookReceipt(BaseModel):
    """The acknowledgement: stored (or already stored) and to be handled in the background."""

    received: bool = True
    duplicate: bool
