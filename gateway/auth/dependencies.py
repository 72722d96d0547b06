"""FastAPI dependencies: the bearer key and the scope a route needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from gateway.auth.service import Principal, Scope
from gateway.errors import Forbidden, Unauthorized
from gateway.runtime import RuntimeDep


async def current_principal(request: Request, runtime: RuntimeDep) -> Principal:
    """The caller behind ``Authorization: Bearer <key>``, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized()
    principal = await runtime.verifier.verify(key.strip())
    if principal is None:
        raise Unauthorized()
    request.state.principal = principal
    return principal


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits keys holding ``scope`` (or ``admin``), else 403."""

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if not principal.allows(scope):
            raise Forbidden(f"this key lacks the {scope.value} scope", code="missing_scope")
        return principal

    return dependency


EventsWriter = Annotated[Principal, Depends(require(Scope.EVENTS_WRITE))]
BillingReader = Annotated[Principal, Depends(require(Scope.BILLING_READ))]
BillingWriter = Annotated[Principal, Depends(require(Scope.BILLING_WRITE))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
