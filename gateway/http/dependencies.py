"""FastAPI dependencies that hand endpoints the process's runtime (infrastructure) or one
capability's state (a field of ``gateway.parts.Parts``, named by the capability's endpoints)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from gateway.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain ``def`` dependency in a thread pool, on every request.
    runtime: Runtime = request.app.state.parts.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def part_of(app: Any, name: str) -> Any:
    """The capability state ``name`` of the running ``app`` (``Parts.<name>``)."""
    return getattr(app.state.parts, name)


def part(name: str) -> Any:
    """A dependency handing an endpoint ``Parts.<name>``: ``Annotated[UsageIngest,
    part("usage")]``."""

    async def dependency(request: Request) -> Any:
        return part_of(request.app, name)

    return Depends(dependency)
