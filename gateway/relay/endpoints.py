"""The relay API: subscriber endpoints, messages, redelivery and recovery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.audit.service import record
from gateway.auth.service import Principal
from gateway.errors import ValidationFailed
from gateway.http.auth import Admin, BillingReader
from gateway.http.dependencies import RuntimeDep
from gateway.http.pagination import decode_cursor
from gateway.relay import messages, schemas, service, subscribers
from gateway.relay.models import DELIVERY_STATUSES, SOURCES, RelayEndpoint
from gateway.runtime import Runtime

router = APIRouter(tags=["relay"])


@router.post("/gateway/endpoints", response_model=schemas.EndpointCreated, status_code=201)
async def create_endpoint(
    body: schemas.EndpointCreate, runtime: RuntimeDep, principal: Admin
) -> dict[str, Any]:
    """Register a subscriber; the answer holds its signing secret."""
    async with runtime.database.session() as session:
        endpoint = await subscribers.create_endpoint(
            session,
            url=body.url,
            description=body.description,
            filter_types=body.filter_types,
            enabled=body.enabled,
            allow_private=runtime.settings.relay_allow_private,
        )
        record(
            session,
            actor=principal.name,
            action="relay.endpoint.create",
            outcome="success",
            target=endpoint.id,
            status=201,
            detail={"filter_types": body.filter_types, "enabled": body.enabled},
        )
        await session.commit()
        return {"endpoint": subscribers.describe(endpoint), "secret": endpoint.secret}


@router.get("/gateway/endpoints", response_model=schemas.EndpointsResponse)
async def list_endpoints(runtime: RuntimeDep, _: Admin) -> dict[str, Any]:
    """Every subscriber endpoint, oldest first."""
    async with runtime.database.session() as session:
        found = await subscribers.list_endpoints(session)
    return {"endpoints": [subscribers.describe(endpoint) for endpoint in found]}


@router.get("/gateway/endpoints/{endpoint_id}", response_model=schemas.EndpointResponse)
async def get_endpoint(endpoint_id: str, runtime: RuntimeDep, _: Admin) -> dict[str, Any]:
    """One subscriber endpoint."""
    async with runtime.database.session() as session:
        endpoint = await subscribers.get_endpoint(session, endpoint_id)
    return {"endpoint": subscribers.describe(endpoint)}


@router.patch("/gateway/endpoints/{endpoint_id}", response_model=schemas.EndpointResponse)
async def update_endpoint(
    endpoint_id: str, body: schemas.EndpointUpdate, runtime: RuntimeDep, principal: Admin
) -> dict[str, Any]:
    """Change URL, description, filters or enabled (re-enabling resets the failure clock)."""
    changes = {field: getattr(body, field) for field in body.model_fields_set}
    nulls = [field for field, value in changes.items() if value is None]
    if nulls:
        raise ValidationFailed(details={nulls[0]: ["may not be null"]})
    async with runtime.database.session() as session:
        endpoint, changed = await subscribers.update_endpoint(
            session, endpoint_id, changes, allow_private=runtime.settings.relay_allow_private
        )
        record(
            session,
            actor=principal.name,
            action="relay.endpoint.update",
            outcome="success",
            target=endpoint_id,
            status=200,
            detail={"fields": changed},
        )
        await session.commit()
        return {"endpoint": subscribers.describe(endpoint)}


@router.delete("/gateway/endpoints/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: str, runtime: RuntimeDep, principal: Admin) -> Response:
    """Remove a subscriber; its pending deliveries are cancelled, its history kept."""
    async with runtime.database.session() as session:
        cancelled = await subscribers.delete_endpoint(session, endpoint_id)
        record(
            session,
            actor=principal.name,
            action="relay.endpoint.delete",
            outcome="success",
            target=endpoint_id,
            status=204,
            detail={"cancelled_deliveries": cancelled},
        )
        await session.commit()
    return Response(status_code=204)


@router.get("/gateway/endpoints/{endpoint_id}/secret", response_model=schemas.EndpointSecret)
async def get_secret(endpoint_id: str, runtime: RuntimeDep, principal: Admin) -> dict[str, Any]:
    """The signing secret (and the previous one while it still signs); every read is audited."""
    return await _secret_action(
        runtime, principal, endpoint_id, subscribers.get_endpoint, "relay.endpoint.secret_read"
    )


@router.post(
    "/gateway/endpoints/{endpoint_id}/secret/rotate", response_model=schemas.EndpointSecret
)
async def rotate_secret(endpoint_id: str, runtime: RuntimeDep, principal: Admin) -> dict[str, Any]:
    """Issue a new secret; the old one keeps signing (a second signature) for 24 hours."""
    return await _secret_action(
        runtime, principal, endpoint_id, subscribers.rotate_secret, "relay.endpoint.secret_rotate"
    )


async def _secret_action(
    runtime: Runtime,
    principal: Principal,
    endpoint_id: str,
    act: Callable[[AsyncSession, str], Awaitable[RelayEndpoint]],
    action: str,
) -> dict[str, Any]:
    """Run ``act`` on the endpoint, audit it as ``action`` in one transaction, show the secret."""
    async with runtime.database.session() as session:
        endpoint = await act(session, endpoint_id)
        record(
            session,
            actor=principal.name,
            action=action,
            outcome="success",
            target=endpoint_id,
            status=200,
        )
        await session.commit()
    return subscribers.describe_secret(endpoint)


@router.post("/gateway/endpoints/{endpoint_id}/recover", response_model=schemas.Recovered)
async def recover_endpoint(
    endpoint_id: str, since: datetime, runtime: RuntimeDep, principal: Admin
) -> dict[str, Any]:
    """Queue again every delivery to this endpoint that failed since ``since`` (RFC 3339)."""
    if since.tzinfo is None:
        raise ValidationFailed(details={"since": ["give a timezone (e.g. Z)"]})
    async with runtime.database.session() as session:
        conn = await session.connection()
        message_ids = await messages.recover(conn, endpoint_id, since)
        record(
            session,
            actor=principal.name,
            action="relay.endpoint.recover",
            outcome="success",
            target=endpoint_id,
            target_ids=message_ids,
            status=200,
            detail={"since": since.isoformat(), "requeued": len(message_ids)},
        )
        await session.commit()
    runtime.database.wake(service.DUE).set()
    return {"endpoint_id": endpoint_id, "message_ids": message_ids}


@router.get("/gateway/messages", response_model=schemas.MessagePage)
async def list_messages(
    runtime: RuntimeDep,
    _: BillingReader,
    type: Annotated[str | None, Query(max_length=255)] = None,
    source: Annotated[str | None, Query(pattern="^(" + "|".join(SOURCES) + ")$")] = None,
    endpoint: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(DELIVERY_STATUSES) + ")$")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Relay messages, newest first, with their per-endpoint delivery state."""
    filters = messages.MessageFilter(type=type, source=source, endpoint_id=endpoint, status=status)
    async with runtime.database.engine.connect() as conn:
        page, next_seq = await messages.list_messages(
            conn, filters, before=decode_cursor(cursor), limit=limit
        )
    return {"messages": page, "next_cursor": None if next_seq is None else str(next_seq)}


@router.get("/gateway/messages/{message_id}", response_model=schemas.MessageResponse)
async def get_message(message_id: str, runtime: RuntimeDep, _: BillingReader) -> dict[str, Any]:
    """One message: the envelope as delivered, its deliveries and every attempt."""
    async with runtime.database.engine.connect() as conn:
        return {"message": await messages.get_message(conn, message_id)}


@router.post("/gateway/messages/{message_id}/redeliver", response_model=schemas.Redelivered)
async def redeliver_message(
    message_id: str,
    runtime: RuntimeDep,
    principal: Admin,
    endpoint_id: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Send a message again, same ``webhook-id``: to one endpoint, or every enabled subscriber."""
    async with runtime.database.session() as session:
        conn = await session.connection()
        targets = await messages.redeliver(conn, message_id, endpoint_id)
        record(
            session,
            actor=principal.name,
            action="relay.message.redeliver",
            outcome="success",
            target=message_id,
            target_ids=targets,
            status=200,
        )
        await session.commit()
    runtime.database.wake(service.DUE).set()
    return {"message_id": message_id, "endpoint_ids": targets}
