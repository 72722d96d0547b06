"""The public door for providers' webhooks: no API key, the signature is the credential."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from gateway.audit.service import record
from gateway.config import Settings
from gateway.errors import Conflict, GatewayError, NotFound, PayloadTooLarge
from gateway.http.auth import Admin
from gateway.http.dependencies import RuntimeDep, part_of
from gateway.http.pagination import decode_cursor
from gateway.webhooks import service, store
from gateway.webhooks.inbox import ARRIVED
from gateway.webhooks.models import DEAD, LAGO, STRIPE
from gateway.webhooks.schemas import InboundWebhookList, InboundWebhookResponse, WebhookReceipt

router = APIRouter(prefix="/gateway/webhooks", tags=["webhooks"])

_REFUSALS: dict[int | str, dict[str, str]] = {
    "400": {"description": "Unreadable: missing header, unknown algorithm, not JSON"},
    "401": {"description": "Signature missing, forged, altered, stale or for another secret"},
    "413": {"description": "Body over GATEWAY_WEBHOOK_BODY_MAX_BYTES"},
}


def _intake(request: Request) -> service.WebhookIntake:
    # Not a dependency: FastAPI's dependency solving is a tenth of this hot path's CPU.
    intake: service.WebhookIntake = part_of(request.app, "webhooks")
    return intake


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


def _lago_issuer(request: Request, settings: Settings) -> str:
    if settings.lago_webhook_issuer or settings.lago_api_url:
        return settings.lago_webhook_issuer or settings.lago_api_url
    # Embedded default: the in-process emulator signs with its own LAGO_API_URL.
    emulator = getattr(request.app.state, "emulator", None)
    return str(getattr(getattr(getattr(emulator, "state", None), "lago", None), "api_url", ""))


@router.post("/lago", response_model=WebhookReceipt, responses=_REFUSALS)
async def receive_lago(request: Request) -> Response:
    """Lago's webhooks (``hmac`` or ``jwt`` signatures), deduplicated on ``X-Lago-Unique-Key``."""
    intake = _intake(request)
    try:
        body = await _read_body(request, intake.settings.webhook_body_max_bytes)
        issuer = _lago_issuer(request, intake.settings)
        receipt = await intake.receive_lago(body, request.headers, issuer)
    except GatewayError as exc:
        await intake.record_rejection(LAGO, exc)
        raise
    return _receipt(receipt)


@router.post("/stripe", response_model=WebhookReceipt, responses=_REFUSALS)
async def receive_stripe(request: Request) -> Response:
    """Stripe's webhooks (``Stripe-Signature``, 300 s tolerance), deduplicated on the event id."""
    intake = _intake(request)
    try:
        body = await _read_body(request, intake.settings.webhook_body_max_bytes)
        receipt = await intake.receive_stripe(body, request.headers)
    except GatewayError as exc:
        await intake.record_rejection(STRIPE, exc)
        raise
    return _receipt(receipt)


@router.get("/inbound", response_model=InboundWebhookList, tags=["webhooks"])
async def list_inbound(
    runtime: RuntimeDep,
    _: Admin,
    status: Annotated[Literal["received", "handled", "dead"] | None, Query()] = None,
    source: Annotated[Literal["lago", "stripe"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Stored webhooks, oldest first, without bodies: ``status=dead`` lists the ones whose
    gateway handling failed for good, with the reason in ``last_error``."""
    rows = await store.list_rows(
        runtime.database,
        status=status,
        source=source,
        after_id=decode_cursor(cursor),
        limit=limit,
    )
    next_cursor = str(rows[-1]["id"]) if len(rows) == limit else None
    return {"webhooks": rows, "next_cursor": next_cursor}


@router.get("/inbound/{webhook_id}", response_model=InboundWebhookResponse, tags=["webhooks"])
async def get_inbound(webhook_id: int, runtime: RuntimeDep, _: Admin) -> dict[str, Any]:
    """One stored webhook, without its body."""
    row = await store.get_row(runtime.database, webhook_id)
    if row is None:
        raise NotFound(code="webhook_not_found")
    return {"webhook": row}


@router.post(
    "/inbound/{webhook_id}/replay", response_model=InboundWebhookResponse, tags=["webhooks"]
)
async def replay_inbound(webhook_id: int, runtime: RuntimeDep, principal: Admin) -> dict[str, Any]:
    """Run a dead webhook's handlers again (the ones that had not succeeded), once its cause
    is fixed. Its relay message is not sent again: subscribers had it on receipt."""
    async with runtime.database.session() as session:
        conn = await session.connection()
        replayed = await store.replay_dead(conn, [webhook_id])
        if replayed:
            record(
                session,
                actor=principal.name,
                action="webhooks.inbound.replay",
                outcome="success",
                target=str(webhook_id),
                status=200,
            )
            await session.commit()
    if replayed:
        runtime.database.wake(ARRIVED).set()
    row = await store.get_row(runtime.database, webhook_id)
    if row is None:
        raise NotFound(code="webhook_not_found")
    if not replayed:
        raise Conflict(
            f"webhook {webhook_id} is {row['status']}, not {DEAD}: only dead webhooks replay",
            code="webhook_not_dead",
        )
    return {"webhook": row}
