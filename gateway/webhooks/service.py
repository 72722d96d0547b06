"""Inbound webhooks: verify first, then store (deduplicated) and acknowledge; audit refusals.

Nothing unverified is stored or relayed: a refusal leaves only an audit line and a metric.
Bodies and secrets are never logged; logs carry the source, the reason and provider ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.audit.service import entry, record_many
from gateway.config import Settings
from gateway.db import Database
from gateway.errors import GatewayError
from gateway.integrations.lago.client import LagoClient
from gateway.logging import get_logger
from gateway.webhooks import metrics
from gateway.webhooks.inbox import InboxWriter, Incoming
from gateway.webhooks.models import LAGO, STRIPE
from gateway.webhooks.verification import (
    LagoPublicKeys,
    SignatureRejected,
    WebhookRejected,
    issuers_for,
    lago_key_fetcher,
    stripe_secrets,
    verify_lago_hmac,
    verify_lago_jwt,
    verify_stripe,
)

log = get_logger(__name__)
MAX_ID_LENGTH = 255


@dataclass(frozen=True)
class Receipt:
    duplicate: bool


def _provider_id(value: Any, reason: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise WebhookRejected(f"{reason.replace('_', ' ')}", code=reason)
    if not value.isprintable():
        raise WebhookRejected("control characters in an identifier", code=reason)
    return value


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WebhookRejected("the body is not valid JSON", code="invalid_json") from exc
    if not isinstance(payload, dict):
        raise WebhookRejected("the body is not a JSON object", code="invalid_json")
    return payload


class WebhookIntake:
    """The capability's long-lived state in one process: the inbox writer and Lago's public
    key cache, with what receives a webhook."""

    def __init__(self, settings: Settings, database: Database, lago: LagoClient) -> None:
        self.settings = settings
        self.database = database
        self.inbox = InboxWriter(database)
        self.lago_keys = LagoPublicKeys(lago_key_fetcher(lago))

    async def receive_lago(self, body: bytes, headers: Mapping[str, str], issuer: str) -> Receipt:
        """Verify a Lago webhook (``hmac`` or ``jwt``), then store it once per unique key."""
        algorithm = headers.get("x-lago-signature-algorithm")
        signature = headers.get("x-lago-signature")
        if not algorithm:
            raise WebhookRejected(code="missing_signature_algorithm")
        if algorithm not in ("hmac", "jwt"):
            raise WebhookRejected(code="unknown_signature_algorithm")
        unique_key = _provider_id(headers.get("x-lago-unique-key"), "missing_unique_key")
        if not signature:
            raise SignatureRejected(code="missing_signature")
        if algorithm == "hmac":
            key = self.settings.lago_webhook_hmac_key.get_secret_value()
            verify_lago_hmac(body, signature, key)
        else:
            await verify_lago_jwt(body, signature, self.lago_keys, issuers_for(issuer))
        payload = _json_object(body)
        event_type = _provider_id(payload.get("webhook_type"), "missing_webhook_type")
        return await self._store(LAGO, unique_key, event_type, body)

    async def receive_stripe(self, body: bytes, headers: Mapping[str, str]) -> Receipt:
        """Verify a Stripe webhook against every configured secret, then store it once per
        event id."""
        secrets = stripe_secrets(self.settings.stripe_webhook_secret.get_secret_value())
        verify_stripe(body, headers.get("stripe-signature"), secrets)
        payload = _json_object(body)
        event_id = _provider_id(payload.get("id"), "missing_event_id")
        event_type = _provider_id(payload.get("type"), "missing_event_type")
        return await self._store(STRIPE, event_id, event_type, body)

    async def _store(self, source: str, provider_id: str, event_type: str, body: bytes) -> Receipt:
        item = Incoming(
            source=source,
            provider_event_id=provider_id,
            event_type=event_type,
            body=body.decode(),
            body_sha256=hashlib.sha256(body).hexdigest(),
            audit=entry(
                actor=f"webhook:{source}",
                action="webhooks.inbound.received",
                outcome="stored",
                target=provider_id,
                upstream=source,
                status=200,
                detail={"type": event_type},
            ),
        )
        new = await self.inbox.store(item)
        if new:
            metrics.RECEIVED.labels(source=source).inc()
        else:
            metrics.DUPLICATE.labels(source=source).inc()
            log.info("webhooks.inbound.duplicate", source=source, provider_event_id=provider_id)
        return Receipt(duplicate=not new)

    async def record_rejection(self, source: str, error: GatewayError) -> None:
        """Count, log and audit a refused webhook (the reason only: no body, no signature)."""
        metrics.REJECTED.labels(source=source, reason=error.code).inc()
        log.warning(
            "webhooks.inbound.rejected", source=source, reason=error.code, status=error.status
        )
        line = entry(
            actor=f"webhook:{source}",
            action="webhooks.inbound.rejected",
            outcome="rejected",
            upstream=source,
            status=error.status,
            detail={"reason": error.code},
        )
        try:
            async with self.database.engine.begin() as conn:
                await record_many(conn, [line])
        except Exception as exc:
            log.error("webhooks.inbound.audit_failed", source=source, error=type(exc).__name__)
