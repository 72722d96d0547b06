"""The catalog's field types and base model, shared by its sections (``schemas``,
``features``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints


def _decimal_text(value: Any) -> Any:
    """YAML numbers become Lago's decimal strings ("0.25"); anything else must parse."""
    if isinstance(value, bool):
        raise ValueError("must be a decimal number")
    if isinstance(value, int | float | Decimal):
        value = str(value)
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ValueError("must be a decimal number") from None
        if not number.is_finite() or number < 0:
            raise ValueError("must be a decimal number, zero or more")
    return value


DecimalText = Annotated[str, BeforeValidator(_decimal_text)]
Code = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
