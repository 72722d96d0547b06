"""Subscriber endpoints: create, change, disable, delete, and their signing secrets."""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any

import orjson
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.errors import NotFound, ValidationFailed
from gateway.relay import store
from gateway.relay.destinations import DestinationRefused, check_public, split_url
from gateway.relay.models import RelayEndpoint
from gateway.relay.service import iso

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
ROTATION_OVERLAP_SECONDS = 24 * 3600.0
MAX_FILTERS = 100
_FILTER = re.compile(r"^[A-Za-z0-9_.*:-]{1,255}$")
_UPDATABLE = ("url", "description", "filter_types", "enabled")


def generate_secret() -> str:
    """A fresh ``whsec_`` secret: 32 random bytes, base64 (Standard Webhooks, 24-64 bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


async def validate_url(url: str, *, allow_private: bool) -> str:
    """The URL, or 422 naming ``url``: http(s) only; public addresses unless allowed."""
    try:
        split_url(url)
        if not allow_private:
            await check_public(url)
    except DestinationRefused as exc:
        raise ValidationFailed(str(exc), details={"url": [str(exc)]}) from exc
    return url


def validate_filters(filter_types: list[str]) -> list[str]:
    """Event type patterns (``invoice.*``, ``*``, exact types), or 422 naming ``filter_types``."""
    if not filter_types or len(filter_types) > MAX_FILTERS:
        raise ValidationFailed(details={"filter_types": [f"give 1 to {MAX_FILTERS} patterns"]})
    bad = [pattern for pattern in filter_types if not _FILTER.match(pattern)]
    if bad:
        raise ValidationFailed(details={"filter_types": [f"invalid pattern {bad[0]!r}"]})
    return sorted(set(filter_types))


def new_endpoint_id() -> str:
    return "ep_" + secrets.token_hex(12)


def describe(endpoint: RelayEndpoint) -> dict[str, Any]:
    """An endpoint as the API shows it; the secret has its own route."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "filter_types": orjson.loads(endpoint.filter_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": None if endpoint.failing_since is None else iso(endpoint.failing_since),
        "created_at": iso(endpoint.created_at),
        "updated_at": iso(endpoint.updated_at),
    }


async def create_endpoint(
    session: AsyncSession,
    *,
    url: str,
    description: str,
    filter_types: list[str],
    enabled: bool,
    allow_private: bool,
) -> RelayEndpoint:
    """Register a subscriber with a generated secret."""
    now = time.time()
    endpoint = RelayEndpoint(
        id=new_endpoint_id(),
        url=await validate_url(url, allow_private=allow_private),
        description=description,
        filter_types=orjson.dumps(validate_filters(filter_types)).decode(),
        enabled=enabled,
        secret=generate_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def list_endpoints(session: AsyncSession) -> list[RelayEndpoint]:
    """Every endpoint, oldest first."""
    return await store.endpoints_oldest_first(session)


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> RelayEndpoint:
    endpoint = await session.get(RelayEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no endpoint {endpoint_id!r}", code="endpoint_not_found")
    return endpoint


async def update_endpoint(
    session: AsyncSession, endpoint_id: str, changes: dict[str, Any], *, allow_private: bool
) -> tuple[RelayEndpoint, list[str]]:
    """Apply the given fields; re-enabling clears the disable reason and the failure clock."""
    endpoint = await get_endpoint(session, endpoint_id)
    changed = [field for field in _UPDATABLE if field in changes]
    if "url" in changes:
        endpoint.url = await validate_url(changes["url"], allow_private=allow_private)
    if "description" in changes:
        endpoint.description = changes["description"]
    if "filter_types" in changes:
        endpoint.filter_types = orjson.dumps(validate_filters(changes["filter_types"])).decode()
    if "enabled" in changes:
        if changes["enabled"] and not endpoint.enabled:
            endpoint.disabled_reason = None
            endpoint.failing_since = None
        elif not changes["enabled"] and endpoint.enabled:
            endpoint.disabled_reason = "disabled by an operator"
        endpoint.enabled = changes["enabled"]
    endpoint.updated_at = time.time()
    session.add(endpoint)
    await session.flush()
    return endpoint, changed


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> int:
    """Remove an endpoint; its pending deliveries are cancelled (history is kept)."""
    endpoint = await get_endpoint(session, endpoint_id)
    cancelled = await store.cancel_deliveries(
        await session.connection(), endpoint_id, "endpoint deleted"
    )
    await session.delete(endpoint)
    await session.flush()
    return cancelled


async def rotate_secret(session: AsyncSession, endpoint_id: str) -> RelayEndpoint:
    """A new secret signs from now on; the previous one also signs for 24 more hours."""
    endpoint = await get_endpoint(session, endpoint_id)
    now = time.time()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP_SECONDS
    endpoint.secret = generate_secret()
    endpoint.updated_at = now
    session.add(endpoint)
    await session.flush()
    return endpoint


def describe_secret(endpoint: RelayEndpoint) -> dict[str, Any]:
    now = time.time()
    expires = endpoint.previous_secret_expires_at
    previous = endpoint.previous_secret if expires is not None and expires > now else None
    return {
        "secret": endpoint.secret,
        "previous_secret": previous,
        "previous_secret_expires_at": iso(expires) if previous and expires else None,
    }
