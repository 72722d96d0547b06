"""Lago's add-ons (``app/controllers/api/v1/add_ons_controller.rb``)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """The add-on routes, mounted under ``/api/v1``."""
    return []
