"""Lago's features and entitlements, passed through.

Reads (``billing:read``): the features, a plan's entitlements, a subscription's entitlements
(the plan's, with that subscription's overrides). Writes (``billing:write``, audited): a
subscription's overrides (``PATCH``) and removals (``DELETE`` a feature or one privilege).
Features and plan entitlements are written by ``gateway catalog apply`` from the catalog
file, as plans and metrics are, so their write routes are not exposed.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import StrictBool, StrictInt, StrictStr, TypeAdapter, ValidationError
from starlette.responses import Response

from gateway.billing.passthrough import Params, Write, read, refuse, segment, write
from gateway.billing.payloads import without_nulls
from gateway.db import Database
from gateway.errors import BadRequest, ValidationFailed
from gateway.http.auth import BillingReader, BillingWriter
from gateway.http.dependencies import RuntimeDep, part
from gateway.http.pagination import LagoPage, query_pairs
from gateway.http.responses import OrjsonResponse
from gateway.integrations.lago.client import LagoClient
from gateway.logging import get_logger
from gateway.meters.service import Meters

log = get_logger(__name__)
router = APIRouter(prefix="/api/v1")
Page = LagoPage
PerPage = Annotated[int | None, Query(ge=1, le=1000, description="Items per page (Lago: 100)")]
Status = Annotated[
    str | None,
    Query(description="The subscription's status (Lago's default: active)"),
]
# Lago's EntitlementUpdateInput: feature code → privilege code → integer, boolean or string.
_ENTITLEMENTS = TypeAdapter(dict[str, dict[str, StrictInt | StrictBool | StrictStr]])
_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["entitlements"],
                    "properties": {"entitlements": _ENTITLEMENTS.json_schema()},
                    "example": {"entitlements": {"video": {"max_clip_seconds": 30}}},
                }
            }
        },
    }
}


def _status(request: Request) -> Params:
    """Only the status parameters Lago reads to find the subscription."""
    return [(k, v) for k, v in query_pairs(request) if k in ("subscription_status", "status")]


def _entitlements(body: bytes) -> dict[str, Any]:
    """The ``entitlements`` object, each feature's privilege values scalars; 400/422 else."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from exc
    value = parsed.get("entitlements") if isinstance(parsed, dict) else None
    if not isinstance(value, dict):
        raise BadRequest("param is missing or the value is empty: entitlements", code="bad_request")
    cleaned = {k: ({} if v is None else without_nulls(v)) for k, v in value.items()}
    try:
        _ENTITLEMENTS.validate_python(cleaned)
    except ValidationError as exc:
        # A location is (feature, privilege, union member): the member is left out.
        fields = {".".join(["entitlements", *map(str, e["loc"][:2])]) for e in exc.errors()}
        raise ValidationFailed(details={f: ["value_is_invalid"] for f in sorted(fields)}) from exc
    return cleaned


class Entitlements:
    """Reads of features and entitlements; audited writes of a subscription's overrides."""

    def __init__(self, database: Database, lago: LagoClient) -> None:
        self._database = database
        self._lago = lago

    async def read(self, path: str, query: Params | None = None) -> dict[str, Any]:
        return await read(self._lago, path, query)

    async def override(
        self, external_id: str, body: bytes, query: Params, actor: str
    ) -> dict[str, Any]:
        """``PATCH /subscriptions/{id}/entitlements``: add or change features and values."""
        change = Write(actor, "subscriptions.entitlements.update", external_id)
        try:
            entitlements = _entitlements(body)
        except (BadRequest, ValidationFailed) as exc:
            raise await refuse(self._database, change, exc) from exc
        change = Write(actor, change.action, external_id, {"features": sorted(entitlements)})
        path = f"/subscriptions/{segment(external_id)}/entitlements"
        json = {"entitlements": entitlements}
        return await write(
            self._database, self._lago, change, "PATCH", path, json=json, params=query
        )

    async def remove(
        self,
        external_id: str,
        feature_code: str,
        privilege_code: str | None,
        query: Params,
        actor: str,
    ) -> dict[str, Any]:
        """``DELETE`` a feature (or one of its privileges) from one subscription."""
        path = f"/subscriptions/{segment(external_id)}/entitlements/{segment(feature_code)}"
        detail: dict[str, Any] = {"feature": feature_code}
        action = "subscriptions.entitlements.remove"
        if privilege_code is not None:
            path += f"/privileges/{segment(privilege_code)}"
            detail["privilege"] = privilege_code
            action = "subscriptions.entitlements.remove_privilege"
        change = Write(actor, action, external_id, detail)
        return await write(self._database, self._lago, change, "DELETE", path, params=query)


def _service(runtime: Any) -> Entitlements:
    return Entitlements(runtime.database, runtime.lago)


MetersDep = Annotated[Meters, part("meters")]


async def _remember(meters: Meters, external_id: str, answer: dict[str, Any]) -> None:
    """Holds and the balance read the subscription's entitlements from the meters' copy of
    its terms: keep it as Lago answered the change (best effort; learned again with the
    subscription's next webhook)."""
    entitlements = answer.get("entitlements")
    if not isinstance(entitlements, list):
        return
    try:
        await meters.save_entitlements(external_id, entitlements)
    except Exception as exc:
        log.warning("entitlements.not_remembered", error=type(exc).__name__)


@router.get("/features", tags=["entitlements"])
async def list_features(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    page: Page = None,
    per_page: PerPage = None,
    search_term: Annotated[str | None, Query(description="In code, name, description")] = None,
) -> Response:
    """The features (what plans can unlock), with their privileges."""
    return OrjsonResponse(await _service(runtime).read("/features", query_pairs(request)))


@router.get("/features/{code}", tags=["entitlements"])
async def get_feature(code: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One feature by code."""
    return OrjsonResponse(await _service(runtime).read(f"/features/{segment(code)}"))


@router.get("/plans/{code}/entitlements", tags=["entitlements"])
async def list_plan_entitlements(code: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """The features a plan unlocks, with its privilege values."""
    path = f"/plans/{segment(code)}/entitlements"
    return OrjsonResponse(await _service(runtime).read(path))


@router.get("/plans/{code}/entitlements/{feature_code}", tags=["entitlements"])
async def get_plan_entitlement(
    code: str, feature_code: str, runtime: RuntimeDep, _: BillingReader
) -> Response:
    """One feature of a plan."""
    path = f"/plans/{segment(code)}/entitlements/{segment(feature_code)}"
    return OrjsonResponse(await _service(runtime).read(path))


@router.get("/subscriptions/{external_id}/entitlements", tags=["entitlements"])
async def list_subscription_entitlements(
    external_id: str,
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    subscription_status: Status = None,
) -> Response:
    """The subscription's features: the plan's, with this subscription's overrides."""
    path = f"/subscriptions/{segment(external_id)}/entitlements"
    return OrjsonResponse(await _service(runtime).read(path, _status(request)))


@router.patch(
    "/subscriptions/{external_id}/entitlements",
    tags=["entitlements"],
    openapi_extra=_BODY_SCHEMA,
)
async def override_subscription_entitlements(
    external_id: str,
    request: Request,
    runtime: RuntimeDep,
    principal: BillingWriter,
    meters: MetersDep,
    subscription_status: Status = None,
) -> Response:
    """Add features to one subscription or change their values (a value equal to the plan's
    drops the override)."""
    body = await request.body()
    service = _service(runtime)
    answer = await service.override(external_id, body, _status(request), principal.name)
    await _remember(meters, external_id, answer)
    return OrjsonResponse(answer)


@router.delete("/subscriptions/{external_id}/entitlements/{feature_code}", tags=["entitlements"])
async def remove_subscription_feature(
    external_id: str,
    feature_code: str,
    request: Request,
    runtime: RuntimeDep,
    principal: BillingWriter,
    meters: MetersDep,
    subscription_status: Status = None,
) -> Response:
    """Take a feature away from one subscription (its override goes; the plan's is removed)."""
    service = _service(runtime)
    answer = await service.remove(external_id, feature_code, None, _status(request), principal.name)
    await _remember(meters, external_id, answer)
    return OrjsonResponse(answer)


@router.delete(
    "/subscriptions/{external_id}/entitlements/{feature_code}/privileges/{privilege_code}",
    tags=["entitlements"],
)
async def remove_subscription_privilege(
    external_id: str,
    feature_code: str,
    privilege_code: str,
    request: Request,
    runtime: RuntimeDep,
    principal: BillingWriter,
    meters: MetersDep,
    subscription_status: Status = None,
) -> Response:
    """Take one privilege of a feature away from one subscription."""
    service = _service(runtime)
    answer = await service.remove(
        external_id, feature_code, privilege_code, _status(request), principal.name
    )
    await _remember(meters, external_id, answer)
    return OrjsonResponse(answer)
