"""Webhooks Lago would send: queued per registered endpoint, signed as Lago signs them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
import orjson

from .clock import new_id

if TYPE_CHECKING:
    from .state import EmulatorState, Record


@dataclass
class Webhook:
    """One webhook for one endpoint; ``unique_key`` stays the same on every attempt."""

    endpoint_id: str
    url: str
    webhook_type: str
    body: bytes
    headers: dict[str, str]
    attempts: list[int | str] = field(default_factory=list)
    status: str = "pending"

    @property
    def unique_key(self) -> str:
        """The ``X-Lago-Unique-Key`` header."""
        return self.headers["X-Lago-Unique-Key"]

    @property
    def payload(self) -> dict[str, Any]:
        """The decoded body."""
        decoded: dict[str, Any] = orjson.loads(self.body)
        return decoded


def sign(state: EmulatorState, algorithm: str, body: bytes) -> str:
    """``X-Lago-Signature`` for ``body``: base64 HMAC-SHA256, or an RS256 JWT carrying it."""
    if algorithm == "hmac":
        digest = hmac.new(state.hmac_key.encode(), body, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()
    claims = {"data": body.decode(), "iss": state.api_url}
    return jwt.encode(claims, state.rsa_private_key, algorithm="RS256")


def _wants(endpoint: Record, webhook_type: str) -> bool:
    """Webhooks::BaseService: ``null`` event types is every type, ``[]`` is none."""
    types = endpoint.get("event_types")
    return types is None or webhook_type in types


def emit(state: EmulatorState, webhook_type: str, object_type: str, obj: Record) -> None:
    """Queue ``webhook_type`` for every endpoint subscribed to it (none registered: nothing)."""
    for endpoint in state.webhook_endpoints.values():
        if not _wants(endpoint, webhook_type):
            continue
        envelope = {
            "webhook_type": webhook_type,
            "object_type": object_type,
            "organization_id": state.organization_id,
            object_type: obj,
        }
        body = orjson.dumps(envelope)
        algorithm = endpoint["signature_algo"]
        headers = {
            "Content-Type": "application/json",
            "X-Lago-Signature": sign(state, algorithm, body),
            "X-Lago-Signature-Algorithm": algorithm,
            "X-Lago-Unique-Key": new_id(),
        }
        webhook = Webhook(endpoint["lago_id"], endpoint["webhook_url"], webhook_type, body, headers)
        state.webhooks_pending.append(webhook)
