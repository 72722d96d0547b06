from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.audit import service
from gateway.audit.schemas import AuditEntryOut, AuditPage
from gateway.errors import ValidationFailed
from gateway.http.auth import BillingReader
from gateway.http.dependencies import RuntimeDep
from gateway.http.pagination import decode_cursor

router = APIRouter(prefix="/gateway/audit", tags=["audit"])


@router.get("", response_model=AuditPage)
async def list_audit_entries(
    runtime: RuntimeDep,
    _: BillingReader,
    action: Annotated[
        str | None,
        Query(description="Exact action, or a prefix ending in * (% and _ are literal)"),
    ] = None,
    target: Annotated[
        str | None, Query(description="A target id, exact: the target or one of target_ids")
    ] = None,
    since: Annotated[datetime | None, Query(description="From this time, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="Before this time")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """The audit log, newest first, with filters and cursor pagination."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(details={name: ["timezone_required"]})
    filters = service.AuditFilter(action=action, target=target, since=since, until=until)
    async with runtime.database.session() as session:
        rows = await service.search(session, filters, before_id=decode_cursor(cursor), limit=limit)
    entries = [AuditEntryOut.model_validate(row, from_attributes=True) for row in rows]
    next_cursor = str(entries[-1].id) if len(entries) == limit else None
    return AuditPage(entries=entries, next_cursor=next_cursor)
