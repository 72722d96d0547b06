"""What the background jobs share: sleeping until woken, logging a failed pass, and the
retention helpers (``retention``) of the tables that prune."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.db import Wake


async def idle(stop: asyncio.Event, wake: Wake, seconds: float) -> None:
    """Sleep until ``stop`` or ``wake`` is set, or ``seconds`` have passed.

    The caller takes ``wake`` (clearing it) before it last looks for work, so a wake-up that
    comes in between is not lost.
    """
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def expected_upstream_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is an answer (or silence) from Lago or Stripe, or their absence from
    the configuration, rather than a fault of the gateway: Lago's or Stripe's refusals (a 404
    on a list), either one unreachable or failing, Stripe not configured."""
    # Imported here: this module is imported by every job, the Stripe SDK takes ~0.2 s.
    from gateway.errors import UpstreamError, UpstreamUnavailable
    from gateway.integrations.lago.client import LagoError
    from gateway.integrations.stripe.client import StripeError

    return isinstance(exc, LagoError | StripeError | UpstreamError | UpstreamUnavailable)


def log_failure(log: Any, event: str, exc: BaseException, **fields: Any) -> None:
    """Log a background pass that failed: one warning line (no traceback) for an expected
    upstream answer, which the next pass tries again; the traceback at error level for
    anything else, which is a bug to look at."""
    if expected_upstream_failure(exc):
        log.warning(event, error=type(exc).__name__, reason=str(exc)[:300], **fields)
    else:
        log.exception(event, error=type(exc).__name__, **fields)
