"""FastAPI dependencies that hand the process's runtime to endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain ``def`` dependency in a thread pool, on every request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
