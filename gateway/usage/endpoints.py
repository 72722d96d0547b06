from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from gateway.audit.service import record
from gateway.auth.service import Principal, Scope
from gateway.errors import Conflict, NotFound, ValidationFailed
from gateway.http.auth import Admin, BillingReader, EventsWriter
from gateway.http.dependencies import RuntimeDep, part
from gateway.http.fastpath import FastCall, FastRoute, read_json_root
from gateway.http.pagination import decode_cursor
from gateway.usage import schemas, store
from gateway.usage.event_lookup import find_event
from gateway.usage.outbox import PENDING
from gateway.usage.service import UsageIngest

router = APIRouter(tags=["usage"])


UsageDep = Annotated[UsageIngest, part("usage")]


def _json(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


@router.post(
    "/api/v1/events",
    response_model=schemas.EventResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schemas.inline_schema(schemas.EventCreate)}},
        }
    },
)
async def create_event(request: Request, usage: UsageDep, principal: EventsWriter) -> Response:
    """Accept one usage event; answered once it is durably stored, forwarded to Lago later."""
    return _json(await _accept_one(await request.body(), usage, principal))


async def _accept_one(body: bytes, usage: UsageIngest, principal: Principal) -> dict[str, Any]:
    raw = read_json_root(body, "event")
    events = await usage.accept([raw], actor=principal.name, batch=False)
    return {"event": events[0]}


@router.post(
    "/api/v1/events/batch",
    response_model=schemas.EventsResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schemas.inline_schema(schemas.EventsBatchCreate)}
            },
        }
    },
)
async def create_events_batch(
    request: Request, usage: UsageDep, principal: EventsWriter
) -> Response:
    """Accept a batch all-or-nothing (errors keyed by index); identical repeats are not errors."""
    return _json(await _accept_batch(await request.body(), usage, principal))


async def _accept_batch(body: bytes, usage: UsageIngest, principal: Principal) -> dict[str, Any]:
    raw = read_json_root(body, "events")
    if not isinstance(raw, list):
        raise ValidationFailed(details={"events": ["invalid_type"]})
    events = await usage.accept(raw, actor=principal.name, batch=True)
    return {"events": events}


# The ingest hot path, answered ahead of FastAPI (gateway.http.fastpath); the routes above
# document it in the OpenAPI schema and behave the same.
async def _fast_one(call: FastCall) -> dict[str, Any]:
    return await _accept_one(await call.body(), call.part, call.principal)


async def _fast_batch(call: FastCall) -> dict[str, Any]:
    return await _accept_batch(await call.body(), call.part, call.principal)


fast_routes = [
    FastRoute("/api/v1/events", Scope.EVENTS_WRITE, _fast_one, "usage"),
    FastRoute("/api/v1/events/batch", Scope.EVENTS_WRITE, _fast_batch, "usage"),
]


@router.get("/api/v1/events/{transaction_id}")
async def get_lago_event(transaction_id: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """Lago's event; while Lago does not have it yet, the gateway's accepted copy in Lago's
    shape (``lago_customer_id``/``lago_subscription_id`` null)."""
    return _json(await find_event(runtime.database, runtime.lago, transaction_id))


@router.get("/gateway/events/{transaction_id}", response_model=schemas.StoredEventResponse)
async def get_event(
    transaction_id: str,
    runtime: RuntimeDep,
    _: BillingReader,
    external_subscription_id: str | None = None,
) -> dict[str, Any]:
    """A stored event and its delivery state: pending, forwarded (when) or dead (Lago's reason)."""
    found = await store.find_events(runtime.database, transaction_id, external_subscription_id)
    if not found:
        raise NotFound(code="event_not_found")
    if len(found) > 1:
        subs = sorted(event["external_subscription_id"] for event in found)
        raise Conflict(
            "several subscriptions use this transaction id: pass external_subscription_id",
            code="ambiguous_transaction_id",
            details={"external_subscription_id": subs},
        )
    return {"event": found[0]}


@router.get("/gateway/outbox/dead", response_model=schemas.DeadPage)
async def list_dead_events(
    runtime: RuntimeDep,
    _: BillingReader,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Events Lago refused, with its reason, oldest first."""
    rows = await store.list_dead(runtime.database, decode_cursor(cursor) or 0, limit)
    next_cursor = str(rows[-1][0]) if len(rows) == limit else None
    return {"events": [event for _, event in rows], "next_cursor": next_cursor}


@router.post("/gateway/outbox/replay", response_model=schemas.ReplayResult)
async def replay_dead_events(
    body: schemas.ReplayRequest, runtime: RuntimeDep, principal: Admin
) -> dict[str, Any]:
    """Re-queue dead events (all, or by transaction id) once their cause is fixed."""
    async with runtime.database.session() as session:
        conn = await session.connection()
        replayed = await store.replay_dead(conn, body.transaction_ids)
        record(
            session,
            actor=principal.name,
            action="usage.outbox.replay",
            outcome="success",
            target_ids=replayed,
            status=200,
        )
        await session.commit()
    runtime.database.wake(PENDING).set()
    return {"replayed": replayed}
