"""The public door for providers' webhooks: no API key, the signature is the credential."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gateway.errors import GatewayError, PayloadTooLarge
from gateway.runtime import Runtime
from gateway.webhooks import service
from gateway.webhooks.models import LAGO, STRIPE
from gateway.webhooks.schemas import WebhookReceipt

router = APIRouter(prefix="/gateway/webhooks", tags=["webhooks"])

_REFUSALS: dict[int | str, dict[str, str]] = {
    "400": {"description": "Unreadable: missing header, unknown algorithm, not JSON"},
    "401": {"description": "Signature missing, forged, altered, stale or for another secret"},
    "413": {"description": "Body over GATEWAY_WEBHOOK_BODY_MAX_BYTES"},
}


def _runtime(request: Request) -> Runtime:
    # Not RuntimeDep: a sync dependency costs a thread-pool hop per request on this hot path.
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_NEW = b'{"received":true,"duplicate":false}'
_DUPLICATE = b'{"received":true,"duplicate":true}'


def _receipt(receipt: service.Receipt) -> Response:
    return Response(_DUPLICATE if receipt.duplicate else _NEW, media_type="application/json")


def _lago_issuer(request: Request, runtime: Runtime) -> str:
    settings = runtime.settings
    if settings.lago_webhook_issuer or settings.lago_api_url:
        return settings.lago_webhook_issuer or settings.lago_api_url
    # Embedded default: the in-process emulator signs with its own LAGO_API_URL.
    emulator = getattr(request.app.state, "emulator", None)
    return str(getattr(getattr(getattr(emulator, "state", None), "lago", None), "api_url", ""))


@router.post("/lago", response_model=WebhookReceipt, responses=_REFUSALS)
async def receive_lago(request: Request) -> Response:
    """Lago's webhooks (``hmac`` or ``jwt`` signatures), deduplicated on ``X-Lago-Unique-Key``."""
    runtime = _runtime(request)
    try:
        body = await _read_body(request, runtime.settings.webhook_body_max_bytes)
        issuer = _lago_issuer(request, runtime)
        receipt = await service.receive_lago(runtime, body, request.headers, issuer)
    except GatewayError as exc:
        await service.record_rejection(runtime, LAGO, exc)
        raise
    return _receipt(receipt)


@router.post("/stripe", response_model=WebhookReceipt, responses=_REFUSALS)
async def receive_stripe(request: Request) -> Response:
    """Stripe's webhooks (``Stripe-Signature``, 300 s tolerance), deduplicated on the event id."""
    runtime = _runtime(request)
    try:
        body = await _read_body(request, runtime.settings.webhook_body_max_bytes)
        receipt = await service.receive_stripe(runtime, body, request.headers)
    except GatewayError as exc:
        await service.record_rejection(runtime, STRIPE, exc)
        raise
    return _receipt(receipt)
