"""Request and response shapes, for the OpenAPI document.

``EventIn`` is the usage event's contract, written once: its fields, their types and which
are required are what ``/openapi.json`` shows, and the hot-path parser (``parsing``), which
reads raw JSON without pydantic, takes its field names, required fields and limits from it
(``Identifier`` marks an id and carries its length limit; pydantic leaves such marks out of
the schema). ``tests/usage/test_contract.py`` checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, Field

EARLIEST_TIMESTAMP = 946_684_800  # 2000-01-01T00:00:00Z
DEFAULT_MAX_FUTURE_SECONDS = 86_400.0


@dataclass(frozen=True)
class Identifier:
    """An id of the event: a string (or an integer), not blank, no NUL, ``max_length`` at most."""

    max_length: int = 255


ID = Identifier()


class EventIn(BaseModel):
    transaction_id: Annotated[str, ID] = Field(
        description="Unique per subscription; resends must reuse it"
    )
    external_subscription_id: Annotated[str | None, ID] = Field(
        None,
        description=(
            "Required unless external_customer_id names a customer with one active subscription"
        ),
    )
    external_customer_id: Annotated[str | None, ID] = None
    code: Annotated[str, ID] = Field(description="A billable metric code")
    timestamp: int | float | str | None = Field(
        None,
        description="Unix seconds (number or numeric string) or RFC 3339; default: receive time",
    )
    properties: dict[str, str | int | float] | None = None
    precise_total_amount_cents: str | None = None


class EventCreate(BaseModel):
    event: EventIn


class EventsBatchCreate(BaseModel):
    events: list[EventIn]


class EventOut(BaseModel):
    lago_id: str
    transaction_id: str
    lago_customer_id: str | None
    code: str
    timestamp: str
    precise_total_amount_cents: str | None
    properties: dict[str, Any]
    lago_subscription_id: str | None
    external_subscription_id: str
    created_at: str


class EventResponse(BaseModel):
    event: EventOut


class EventsResponse(BaseModel):
    events: list[EventOut]


class StoredEvent(BaseModel):
    external_subscription_id: str
    transaction_id: str
    code: str
    event: dict[str, Any]
    status: str = Field(description="pending, forwarded or dead")
    attempts: int
    accepted_at: float
    accepted_by: str
    next_attempt_at: float | None
    forwarded_at: float | None
    last_error: str | None = Field(description="For dead events: Lago's reason")


class StoredEventResponse(BaseModel):
    event: StoredEvent


class DeadPage(BaseModel):
    events: list[StoredEvent]
    next_cursor: str | None


class ReplayRequest(BaseModel):
    transaction_ids: list[str] | None = Field(None, description="Omit to replay every dead event")


class ReplayResult(BaseModel):
    replayed: list[str]


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its ``$defs`` inlined (for ``openapi_extra`` bodies)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
