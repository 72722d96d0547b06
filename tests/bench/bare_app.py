"""The baseline of figure 2: a bare FastAPI endpoint that validates the same body with
pydantic and stores nothing, served the same way as the gateway (uvicorn, uvloop, httptools,
with a response's writes coalesced: ``gateway.http.serving``). The holds benchmark uses its
hold, capture and balance routes: the same paths and bodies as the gateway's, a small JSON
answer, nothing stored.

    python -m uvicorn tests.bench.bare_app:app --loop uvloop \
        --http gateway.http.serving:CoalescingHttpToolsProtocol
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gateway.app import tune_gc
from gateway.holds.schemas import CaptureIn, HoldIn
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


@app.post("/gateway/holds", status_code=201)
async def create_hold(body: HoldIn) -> dict[str, Any]:
    """Validate and answer a small hold: no auth, no database."""
    hold = body.hold
    return {
        "hold": {
            "id": f"hold_{hold.transaction_id}",
            "status": "held",
            "transaction_id": hold.transaction_id,
            "code": hold.code,
            "units": 1.0,
        }
    }


@app.post("/gateway/holds/{hold_id}/capture")
async def capture_hold(hold_id: str, body: CaptureIn | None = None) -> dict[str, Any]:
    """Answer the captured hold: no auth, no database."""
    return {"hold": {"id": hold_id, "status": "captured", "captured_units": 1.0}}


@app.get("/gateway/customers/{external_id}/balance")
async def balance(external_id: str) -> dict[str, Any]:
    """A small balance: no auth, no database."""
    return {
        "balance": {
            "external_customer_id": external_id,
            "usage": {"photo_generation": {"units": 0, "held": 0, "can_generate": True}},
        }
    }
