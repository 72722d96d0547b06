"""What other capabilities do with inbound webhooks: a registry of handlers by source and type.

``register("stripe", "payment_intent.*", handler)``; a handler is
``async def handler(runtime, inbound, payload) -> None``. Handlers run in the background
before the webhook becomes a relay message; one that raises sends the webhook back to the
queue (retried with backoff, not relayed until every handler has succeeded). A webhook may
be handled more than once (a crash after the handler, an expired lease), so handlers must
be idempotent: key what they write on ``inbound.source`` and ``inbound.provider_event_id``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from gateway.webhooks.models import InboundWebhook

Handler = Callable[["Runtime", "InboundWebhook", dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Registration:
    source: str
    type_pattern: str
    handler: Handler

    def matches(self, source: str, event_type: str) -> bool:
        return fnmatch.fnmatchcase(source, self.source) and fnmatch.fnmatchcase(
            event_type, self.type_pattern
        )


_registry: list[Registration] = []


def register(source: str, type_pattern: str, handler: Handler) -> Handler:
    """Call ``handler`` for webhooks from ``source`` (``lago``, ``stripe``, ``*``) whose type
    matches ``type_pattern`` (``invoice.created``, ``invoice.*``, ``*``). Returns the handler."""
    registration = Registration(source, type_pattern, handler)
    if registration not in _registry:
        _registry.append(registration)
    return handler


def unregister(handler: Handler) -> None:
    """Remove every registration of ``handler``."""
    _registry[:] = [r for r in _registry if r.handler is not handler]


def matching(source: str, event_type: str) -> list[Handler]:
    """The handlers for one webhook, in registration order."""
    return [r.handler for r in _registry if r.matches(source, event_type)]
