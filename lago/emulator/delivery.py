"""Posting queued webhooks the way Lago's ``SendHttpService`` does: a few attempts, same key."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

from .outbox import Webhook

if TYPE_CHECKING:
    from .state import EmulatorState

SUCCESS_STATUSES = frozenset({200, 201, 202, 204})


async def _attempt(client: httpx.AsyncClient, webhook: Webhook) -> bool:
    try:
        response = await client.post(webhook.url, content=webhook.body, headers=webhook.headers)
    except httpx.HTTPError as exc:
        webhook.attempts.append(type(exc).__name__)
        return False
    webhook.attempts.append(response.status_code)
    return response.status_code in SUCCESS_STATUSES


async def deliver(
    state: EmulatorState,
    client: httpx.AsyncClient,
    attempts: int = 3,
    delays: Sequence[float] = (0.0, 0.0),
) -> list[Webhook]:
    """Send every pending webhook; each gets up to ``attempts`` tries, waiting ``delays[n]``
    after the n-th failure (Lago waits about 3 s then 20 s). Returns the webhooks handled."""
    handled, state.webhooks_pending = state.webhooks_pending, []
    for webhook in handled:
        for attempt in range(attempts):
            if await _attempt(client, webhook):
                webhook.status = "succeeded"
                break
            if attempt < attempts - 1 and attempt < len(delays) and delays[attempt] > 0:
                await asyncio.sleep(delays[attempt])
        else:
            webhook.status = "failed"
        state.webhooks_sent.append(webhook)
    return handled
