"""What a handler's failure means: worth retrying later, or dead until someone fixes it.

Transient (retried on a schedule): Lago or Stripe unreachable, timed out, throttled or
failing (5xx, 429, 408), the gateway's own database or network unavailable, a handler that
ran past its timeout. Permanent (dead at once, with the reason): every other answer (a 4xx
from Lago or Stripe, a payload the handler cannot read, a bug). A permanent failure does not
get better by waiting; it gets better by a fix and a replay.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.errors import GatewayError
from gateway.integrations.lago.client import LagoApiError, LagoUnavailable

TRANSIENT_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Failure:
    """A handler's failure: ``reason`` is what operators see (type and message, no payload)."""

    handler: str
    transient: bool
    reason: str


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may not happen again if the same handler runs later."""
    if isinstance(exc, TimeoutError | LagoUnavailable | httpx.TransportError | PoolTimeout):
        return True
    if isinstance(exc, LagoApiError):
        return exc.status >= 500 or exc.status in TRANSIENT_STATUSES
    if isinstance(exc, GatewayError):
        return exc.status >= 500 or exc.status in TRANSIENT_STATUSES
    if isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return True
    if _is_stripe_unavailable(exc):
        return True
    return isinstance(exc, ConnectionError)


def _is_stripe_unavailable(exc: BaseException) -> bool:
    # Imported lazily: the Stripe SDK takes ~0.2 s to import and most processes never need it.
    from gateway.integrations.stripe.client import StripeUnavailable

    return isinstance(exc, StripeUnavailable)


def describe(exc: BaseException) -> str:
    """``Type: message``, capped, for ``last_error`` (messages carry ids, never payloads)."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return "TimeoutError: the handler did not finish in time"
    return f"{type(exc).__name__}: {str(exc)[:500]}"


def failure(handler: str, exc: BaseException) -> Failure:
    return Failure(handler, is_transient(exc), describe(exc))
