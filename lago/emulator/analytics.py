"""Lago's ``/analytics/*`` reads (``app/controllers/api/v1/analytics/``)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """The analytics routes, mounted under ``/api/v1``."""
    return []
