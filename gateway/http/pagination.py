"""Keyset cursors shared by the list endpoints: an opaque row id, checked before it reaches SQL."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from gateway.errors import ValidationFailed

MAX_ID = 2**63 - 1
# Lago's page number on the Lago-compatible lists: past a 32-bit page Lago's offset would
# overflow its database, so the gateway answers 422 naming ``page`` instead of passing it on.
LagoPage = Annotated[
    int | None, Query(ge=1, le=2**31 - 1, description="Lago's page number (1-based)")
]


def decode_cursor(cursor: str | None) -> int | None:
    """The id inside ``cursor``, or a 422 naming the field (digits only, within a 64-bit id)."""
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19 or int(cursor) > MAX_ID:
        raise ValidationFailed(details={"cursor": ["invalid_value"]})
    return int(cursor)


def query_pairs(request: Request) -> list[tuple[str, str]]:
    """The request's query as ordered pairs, repeated keys kept (``statuses[]=a&statuses[]=b``),
    as Lago's lists take it."""
    return list(request.query_params.multi_items())
