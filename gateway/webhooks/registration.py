"""Registering the gateway as a webhook endpoint in Lago, idempotently."""

from __future__ import annotations

from typing import Any

from gateway.integrations.lago.client import LagoClient

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"


async def find_lago_endpoint(lago: LagoClient, url: str) -> dict[str, Any] | None:
    """The Lago webhook endpoint posting to ``url`` (Lago keeps URLs unique), if any."""
    page: int | None = 1
    while page is not None:
        answer = await lago.call(
            "GET", "/webhook_endpoints", params={"page": page, "per_page": 100}
        )
        for endpoint in answer.get("webhook_endpoints", []):
            if endpoint.get("webhook_url") == url:
                found: dict[str, Any] = endpoint
                return found
        next_page = (answer.get("meta") or {}).get("next_page")
        page = int(next_page) if next_page else None
    return None


async def register_lago_endpoint(
    lago: LagoClient,
    url: str,
    *,
    algorithm: str = "hmac",
    name: str | None = None,
    event_types: list[str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Make Lago post its webhooks to ``url`` signed with ``algorithm``.

    Returns (created | updated | unchanged, Lago's endpoint). An endpoint already posting to
    ``url`` is updated only when its algorithm (or the event types asked for) differ.
    """
    wanted: dict[str, Any] = {"webhook_url": url, "signature_algo": algorithm}
    if name is not None:
        wanted["name"] = name
    if event_types:
        wanted["event_types"] = event_types
    existing = await find_lago_endpoint(lago, url)
    if existing is None:
        created = await lago.call("POST", "/webhook_endpoints", json={"webhook_endpoint": wanted})
        return CREATED, created["webhook_endpoint"]
    same_types = not event_types or sorted(existing.get("event_types") or []) == sorted(event_types)
    if existing.get("signature_algo") == algorithm and same_types:
        return UNCHANGED, existing
    updated = await lago.call(
        "PUT", f"/webhook_endpoints/{existing['lago_id']}", json={"webhook_endpoint": wanted}
    )
    return UPDATED, updated["webhook_endpoint"]
