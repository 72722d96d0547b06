"""Lago's payments and a customer's payment methods (``api/v1/payments_controller.rb``)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """The payment routes, mounted under ``/api/v1``."""
    return []
