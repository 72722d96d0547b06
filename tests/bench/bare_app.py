"""The baseline of figure 2: a bare FastAPI endpoint that validates the same body with
pydantic and stores nothing, served the same way as the gateway (uvicorn, uvloop, httptools).

    python -m uvicorn tests.bench.bare_app:app --loop uvloop --http httptools
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from gateway.usage.schemas import EventCreate

app = FastAPI()


@app.post("/api/v1/events")
async def create_event(body: EventCreate) -> dict[str, Any]:
    """Validate and echo: no auth, no database, no Lago."""
    return {"event": body.event.model_dump()}
