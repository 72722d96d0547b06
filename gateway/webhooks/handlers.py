"""What other capabilities do with inbound webhooks: a table of handlers by source and type.

``Route("stripe", "payment_intent.*", handler)``; a handler is
``async def handler(runtime, inbound, payload) -> None``. The gateway's table is
``gateway.worker.WEBHOOK_HANDLERS`` (this package knows no capability that handles
webhooks); the processor is given it. Handlers run in the background before the webhook
becomes a relay message; one that raises sends the webhook back to the queue (retried with
backoff, not relayed until every handler has succeeded). A webhook may be handled more
than once (a crash after the handler, an expired lease), so handlers must be idempotent:
key what they write on ``inbound.source`` and ``inbound.provider_event_id``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from gateway.webhooks.models import InboundWebhook

MATCH_CACHE_SIZE = 1024
Handler = Callable[["Runtime", "InboundWebhook", dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """Call ``handler`` for webhooks from ``source`` (``lago``, ``stripe``, ``*``) whose type
    matches ``type_pattern`` (``invoice.created``, ``invoice.*``, ``*``)."""

    source: str
    type_pattern: str
    handler: Handler

    def matches(self, source: str, event_type: str) -> bool:
        return fnmatch.fnmatchcase(source, self.source) and fnmatch.fnmatchcase(
            event_type, self.type_pattern
        )


class HandlerTable:
    """Every (source, type pattern, handler) a processor runs, in order; a route listed
    twice counts once."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: tuple[Route, ...] = tuple(dict.fromkeys(routes))
        # Per (source, type): every run of every webhook asks, and the patterns never change.
        self._matched: dict[tuple[str, str], tuple[Handler, ...]] = {}

    def matching(self, source: str, event_type: str) -> list[Handler]:
        """The handlers for one webhook, in table order."""
        found = self._matched.get((source, event_type))
        if found is None:
            if len(self._matched) >= MATCH_CACHE_SIZE:
                self._matched.clear()
            found = tuple(r.handler for r in self.routes if r.matches(source, event_type))
            self._matched[(source, event_type)] = found
        return list(found)
