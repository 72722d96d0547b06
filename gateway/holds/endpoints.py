"""``/gateway/holds``: reserve a generation's usage, then capture or release it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gateway.auth.service import Scope
from gateway.billing.payloads import body_schema, read_root
from gateway.catalog.schemas import Catalog
from gateway.holds.schemas import CaptureIn, HoldIn
from gateway.holds.service import Holds
from gateway.http.auth import EventsWriter
from gateway.http.dependencies import RuntimeDep, part, part_of
from gateway.http.fastpath import FastCall, FastRoute
from gateway.http.responses import OrjsonResponse
from gateway.meters.service import Meters
from gateway.usage.lookups import LagoLookups

router = APIRouter(prefix="/gateway/holds", tags=["holds"])


async def _holds(
    runtime: RuntimeDep,
    meters: Annotated[Meters, part("meters")],
    lookups: Annotated[LagoLookups, part("lookups")],
    catalog: Annotated[Catalog | None, part("catalog")],
) -> Holds:
    return Holds(
        runtime.database,
        runtime.lago,
        meters,
        lookups,
        catalog,
        runtime.settings.event_max_future_seconds,
    )


HoldsDep = Annotated[Holds, Depends(_holds)]


def _optional_root(body: bytes, root: str) -> dict[str, Any]:
    return read_root(body, root) if body.strip() else {}


def _optional(extra: dict[str, Any]) -> dict[str, Any]:
    extra["requestBody"]["required"] = False
    return extra


@router.post(
    "",
    status_code=201,
    openapi_extra=body_schema(HoldIn),
)
async def create_hold(request: Request, holds: HoldsDep, principal: EventsWriter) -> Response:
    """Reserve what a generation will use: 201 with the hold, 200 with the same hold for a
    resend, 402 ``insufficient_credits``, 403 ``feature_not_entitled``."""
    params = read_root(await request.body(), "hold")
    hold, created = await holds.hold(params, principal.name)
    return OrjsonResponse({"hold": hold}, status_code=201 if created else 200)


@router.get("/{hold_id}")
async def get_hold(hold_id: str, holds: HoldsDep, _: EventsWriter) -> Response:
    """One hold."""
    return OrjsonResponse({"hold": await holds.get(hold_id)})


@router.post(
    "/{hold_id}/capture",
    openapi_extra=_optional(body_schema(CaptureIn)),
)
async def capture_hold(
    hold_id: str, request: Request, holds: HoldsDep, principal: EventsWriter
) -> Response:
    """Turn the hold into its usage event (final ``properties`` optional), exactly once."""
    params = _optional_root(await request.body(), "hold")
    return OrjsonResponse({"hold": await holds.capture(hold_id, params, principal.name)})


@router.post("/{hold_id}/release")
async def release_hold(hold_id: str, holds: HoldsDep, principal: EventsWriter) -> Response:
    """Give the reservation back; no usage event."""
    return OrjsonResponse({"hold": await holds.release(hold_id, principal.name)})


# Holds, capture and release answered by the door (``gateway.http.fastpath``), as above.
def _holds_of(call: FastCall) -> Holds:
    runtime = part_of(call.app, "runtime")
    return Holds(
        runtime.database,
        runtime.lago,
        call.part,
        part_of(call.app, "lookups"),
        part_of(call.app, "catalog"),
        runtime.settings.event_max_future_seconds,
    )


async def _fast_create(call: FastCall) -> dict[str, Any]:
    params = read_root(await call.body(), "hold")
    hold, created = await _holds_of(call).hold(params, call.principal.name)
    call.status = 201 if created else 200
    return {"hold": hold}


async def _fast_capture(call: FastCall) -> dict[str, Any]:
    params = _optional_root(await call.body(), "hold")
    holds = _holds_of(call)
    return {"hold": await holds.capture(call.params["hold_id"], params, call.principal.name)}


async def _fast_release(call: FastCall) -> dict[str, Any]:
    await call.body()
    holds = _holds_of(call)
    return {"hold": await holds.release(call.params["hold_id"], call.principal.name)}


fast_routes = [
    FastRoute(router.prefix, Scope.EVENTS_WRITE, _fast_create, "meters"),
    FastRoute(f"{router.prefix}/{{hold_id}}/capture", Scope.EVENTS_WRITE, _fast_capture, "meters"),
    FastRoute(f"{router.prefix}/{{hold_id}}/release", Scope.EVENTS_WRITE, _fast_release, "meters"),
]
