"""Webhook endpoints (at most 10, URL unique) and the JWT public key."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from starlette.requests import Request
from starlette.responses import Response

from .clock import iso, new_id
from .errors import NotFound, ValidationFailed, invalid, missing
from .http import ok, paginate, read_root, state_of
from .state import EmulatorState, Record

MAX_ENDPOINTS = 10


def create_endpoint(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Register a URL Lago will post webhooks to."""
    url = params.get("webhook_url")
    if not url:
        raise missing("webhook_url")
    algorithm = params.get("signature_algo") or "jwt"
    if algorithm not in ("jwt", "hmac"):
        raise invalid("signature_algo")
    if any(e["webhook_url"] == url for e in state.webhook_endpoints.values()):
        raise ValidationFailed({"webhook_url": ["value_already_exist"]})
    if len(state.webhook_endpoints) >= MAX_ENDPOINTS:
        raise ValidationFailed({"base": ["exceeded_limit"]})
    endpoint: Record = {
        "lago_id": new_id(),
        "lago_organization_id": state.organization_id,
        "webhook_url": url,
        "signature_algo": algorithm,
        "name": params.get("name"),
        "event_types": params.get("event_types"),
        "created_at": iso(state.now()),
    }
    state.webhook_endpoints[endpoint["lago_id"]] = endpoint
    return endpoint


def public_key_base64(state: EmulatorState) -> str:
    """The PEM public key, base64-encoded as Lago serves it."""
    pem = state.rsa_private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(pem).decode()


def _get(state: EmulatorState, lago_id: str) -> Record:
    endpoint = state.webhook_endpoints.get(lago_id)
    if endpoint is None:
        raise NotFound("webhook_endpoint")
    return endpoint


async def create(request: Request) -> Response:
    """POST /webhook_endpoints."""
    params = await read_root(request, "webhook_endpoint")
    return ok({"webhook_endpoint": create_endpoint(state_of(request), params)})


async def index(request: Request) -> Response:
    """GET /webhook_endpoints."""
    return paginate(
        request, "webhook_endpoints", list(state_of(request).webhook_endpoints.values())
    )


async def show(request: Request) -> Response:
    """GET /webhook_endpoints/{lago_id}."""
    return ok({"webhook_endpoint": _get(state_of(request), request.path_params["lago_id"])})


async def destroy(request: Request) -> Response:
    """DELETE /webhook_endpoints/{lago_id}."""
    state = state_of(request)
    endpoint = _get(state, request.path_params["lago_id"])
    del state.webhook_endpoints[endpoint["lago_id"]]
    return ok({"webhook_endpoint": endpoint})


async def json_public_key(request: Request) -> Response:
    """GET /webhooks/json_public_key."""
    return ok({"webhook": {"public_key": public_key_base64(state_of(request))}})
