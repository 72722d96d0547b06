"""What the gateway checks in credit note bodies before Lago sees them (422 naming the field)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from gateway.billing.payloads import LagoInput

Cents = Annotated[int, Field(ge=0)]
Reason = Literal[
    "duplicated_charge",
    "product_unsatisfactory",
    "order_change",
    "order_cancellation",
    "fraudulent_charge",
    "other",
]
Metadata = dict[str, str | None]


class CreditNoteItemInput(LagoInput):
    fee_id: UUID
    amount_cents: Cents


class CreditNoteEstimateInput(LagoInput):
    invoice_id: UUID
    items: list[CreditNoteItemInput]


class CreditNoteInput(CreditNoteEstimateInput):
    reason: Reason | None = None
    description: str | None = None
    credit_amount_cents: Cents | None = None
    refund_amount_cents: Cents | None = None
    offset_amount_cents: Cents | None = None
    metadata: Metadata | None = None


class CreditNoteChanges(LagoInput):
    refund_status: Literal["pending", "succeeded", "failed"] | None = None
    metadata: Metadata | None = None


class CreditNoteCreate(BaseModel):
    """``POST /api/v1/credit_notes``."""

    credit_note: CreditNoteInput


class CreditNoteEstimate(BaseModel):
    """``POST /api/v1/credit_notes/estimate``."""

    credit_note: CreditNoteEstimateInput


class CreditNoteUpdate(BaseModel):
    """``PUT /api/v1/credit_notes/{lago_id}``."""

    credit_note: CreditNoteChanges
