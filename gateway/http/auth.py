"""FastAPI dependencies: the bearer key and the scope a route needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from gateway.auth.service import Principal, Scope, authenticate, authorize
from gateway.http.dependencies import part_of


async def current_principal(request: Request) -> Principal:
    """The caller behind ``Authorization: Bearer <key>``, or 401."""
    keys = part_of(request.app, "keys")
    principal = await authenticate(keys, request.headers.get("authorization", ""))
    request.state.principal = principal
    return principal


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits keys holding ``scope`` (or ``admin``), else 403."""

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        return authorize(principal, scope)

    return dependency


EventsWriter = Annotated[Principal, Depends(require(Scope.EVENTS_WRITE))]
BillingReader = Annotated[Principal, Depends(require(Scope.BILLING_READ))]
BillingWriter = Annotated[Principal, Depends(require(Scope.BILLING_WRITE))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
