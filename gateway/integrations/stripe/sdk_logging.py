"""The stripe SDK's own logging, silenced: it would write every request and response body.

The SDK logs each body at DEBUG on the ``stripe`` logger and prints it to stderr when
``stripe.log`` or the ``STRIPE_LOG`` environment variable (read once, at import) says
``debug``. Those bodies hold PaymentIntent client secrets and customer emails; the
gateway's own log lines name ids and error codes instead.
"""

from __future__ import annotations

import logging

import stripe
import stripe._util


class _BelowWarning(logging.Filter):
    """Drops the SDK's DEBUG and INFO records, whatever level a logging config gives it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


_SDK_FILTER = _BelowWarning()


def silence_sdk_logs() -> None:
    """Turn the SDK's body printing off and keep its logger at WARNING (idempotent)."""
    stripe.log = None
    stripe._util.STRIPE_LOG = None
    logger = logging.getLogger("stripe")
    logger.setLevel(logging.WARNING)
    if _SDK_FILTER not in logger.filters:
        logger.addFilter(_SDK_FILTER)
