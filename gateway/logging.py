"""Structured logs (structlog) carrying the request id; never payloads or secrets."""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar

import structlog

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Route stdlib and structlog output through one JSON (or console) renderer."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_request_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
    # aiosqlite logs each statement with its parameters at DEBUG, the stripe SDK each request
    # and response body (client secrets, emails; its console printing is turned off by the
    # Stripe client, gateway/integrations/stripe/client.py): secrets must not reach logs.
    for noisy in ("httpx", "httpcore", "aiohttp", "uvicorn.access", "aiosqlite", "stripe"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _add_request_id(
    _: object, __: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """The current request's id on every line logged while serving it."""
    request_id = request_id_var.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]


def request_id_from(header: bytes) -> str:
    """The caller's ``X-Request-Id`` (bounded), or a fresh random one when it sent none."""
    return header.decode("latin-1")[:64] or os.urandom(16).hex()
