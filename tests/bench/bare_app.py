"""The baseline of figure 2: a bare FastAPI endpoint that validates the same body with
pydantic and stores nothing, served the same way as the gateway (uvicorn, uvloop, httptools,
with a response's writes coalesced: ``gateway.http.serving``).

    python -m uvicorn tests.bench.bare_app:app --loop uvloop \
        --http gateway.http.serving:CoalescingHttpToolsProtocol
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gateway.app import tune_gc
from gateway.usage.schemas import EventCreate


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    tune_gc()  # the gateway's GC settings too: the baseline gets every advantage it does
    yield


# Configured like the gateway's app (FastAPI's native OpenTelemetry off).
app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False}, lifespan=lifespan)


@app.post("/api/v1/events")
async def create_event(body: EventCreate) -> dict[str, Any]:
    """Validate and echo: no auth, no database, no Lago."""
    return {"event": body.event.model_dump()}
