"""The public door for providers' webhooks: no API key, the signature is the credential."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import Headers

from gateway.audit.service import record
from gateway.config import Settings
from gateway.errors import Conflict, GatewayError, NotFound, PayloadTooLarge
from gateway.http.auth import Admin
from gateway.http.dependencies import RuntimeDep, part_of
from gateway.http.fastpath import FastCall, FastRoute
from gateway.http.pagination import decode_cursor
from gateway.http.responses import OrjsonResponse
from gateway.webhooks import store
from gateway.webhooks.inbox import ARRIVED
from gateway.webhooks.models import DEAD, LAGO, STRIPE
from gateway.webhooks.schemas import InboundWebhookList, InboundWebhookResponse, WebhookReceipt
from gateway.webhooks.service import WebhookIntake

router = APIRouter(prefix="/gateway/webhooks", tags=["webhooks"])

_REFUSALS: dict[int | str, dict[str, str]] = {
    "400": {"description": "Unreadable: missing header, unknown algorithm, not JSON"},
    "401": {"description": "Signature missing, forged, altered, stale or for another secret"},
    "413": {"description": "Body over GATEWAY_WEBHOOK_BODY_MAX_BYTES"},
}


Read = Callable[[int], Awaitable[bytes]]


async def _read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _lago_issuer(app: Any, settings: Settings) -> str:
    if settings.lago_webhook_issuer or settings.lago_api_url:
        return settings.lago_webhook_issuer or settings.lago_api_url
    # Embedded default: the in-process emulator signs with its own LAGO_API_URL.
    emulator = getattr(app.state, "emulator", None)
    return str(getattr(getattr(getattr(emulator, "state", None), "lago", None), "api_url", ""))


def _checked_length(headers: Headers, limit: int) -> None:
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"body over {limit} bytes")


async def _lago(intake: WebhookIntake, app: Any, headers: Headers, read: Read) -> dict[str, Any]:
    limit = intake.settings.webhook_body_max_bytes
    try:
        _checked_length(headers, limit)
        body = await read(limit)
        issuer = _lago_issuer(app, intake.settings)
        receipt = await intake.receive_lago(body, headers, issuer)
    except GatewayError as exc:
        await intake.record_rejection(LAGO, exc)
        raise
    return {"received": True, "duplicate": receipt.duplicate}


async def _stripe(intake: WebhookIntake, headers: Headers, read: Read) -> dict[str, Any]:
    limit = intake.settings.webhook_body_max_bytes
    try:
        _checked_length(headers, limit)
        body = await read(limit)
        receipt = await intake.receive_stripe(body, headers)
    except GatewayError as exc:
        await intake.record_rejection(STRIPE, exc)
        raise
    return {"received": True, "duplicate": receipt.duplicate}


# The FastAPI routes document the webhook doors in the OpenAPI schema; the door serves the
# same paths itself (``fast_routes``), ahead of FastAPI's router and dependency solving.
@router.post("/lago", response_model=WebhookReceipt, responses=_REFUSALS)
async def receive_lago(request: Request) -> Response:
    """Lago's webhooks (``hmac`` or ``jwt`` signatures), deduplicated on ``X-Lago-Unique-Key``."""
    intake: WebhookIntake = part_of(request.app, "webhooks")
    content = await _lago(intake, request.app, request.headers, partial(_read_body, request))
    return OrjsonResponse(content)


@router.post("/stripe", response_model=WebhookReceipt, responses=_REFUSALS)
async def receive_stripe(request: Request) -> Response:
    """Stripe's webhooks (``Stripe-Signature``, 300 s tolerance), deduplicated on the event id."""
    intake: WebhookIntake = part_of(request.app, "webhooks")
    content = await _stripe(intake, request.headers, partial(_read_body, request))
    return OrjsonResponse(content)


async def _fast_lago(call: FastCall) -> dict[str, Any]:
    return await _lago(call.part, call.app, Headers(scope=call.scope), call.body)


async def _fast_stripe(call: FastCall) -> dict[str, Any]:
    return await _stripe(call.part, Headers(scope=call.scope), call.body)


fast_routes = [
    FastRoute(f"{router.prefix}/lago", None, _fast_lago, "webhooks"),
    FastRoute(f"{router.prefix}/stripe", None, _fast_stripe, "webhooks"),
]


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
