"""What every analytics query of Lago shares: its months, filters and number formats.

From ``app/models/analytics/*.rb``: ``all_months`` runs from the organization's creation
month to the current month (``CURRENT_DATE``, UTC); ``months`` keeps the last N of them
(``(months.to_i <= 1) ? 0 : months.to_i - 1`` months before this one); ``currency`` is
upper-cased by the controllers; an unknown ``billing_entity_code`` finds no billing entity,
so no filter (``base_controller.rb#billing_entity``); ``external_customer_id`` keeps the
invoices of that customer if it is not deleted (``c.deleted_at IS NULL``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from starlette.datastructures import QueryParams

from .clock import parse_iso
from .state import EmulatorState, Record

_RUBY_INT = re.compile(r"\s*([+-]?\d+(?:_\d+)*)")


def month_of(value: str) -> str:
    """``DATE_TRUNC('month', ...)`` of an ISO date or UTC datetime, as ``YYYY-MM-01``."""
    return f"{value[:7]}-01"


def month_label(month: str) -> str:
    """A ``timestamp`` column as Rails renders it: ``2024-01-01T00:00:00.000Z``."""
    return f"{month}T00:00:00.000Z"


def add_months(month: str, count: int) -> str:
    """The month ``count`` months after (before, when negative) ``month``."""
    index = int(month[:4]) * 12 + int(month[5:7]) - 1 + count
    return f"{index // 12:04d}-{index % 12 + 1:02d}-01"


def big_decimal(value: int | Decimal) -> str:
    """A ``numeric`` column through Rails' JSON: ``BigDecimal#to_s`` (``"1000.0"``)."""
    text = format(Decimal(value).normalize(), "f")
    return text if "." in text else f"{text}.0"


def ruby_to_i(value: str) -> int:
    """Ruby's ``String#to_i``: the leading integer, else 0."""
    found = _RUBY_INT.match(value)
    return int(found.group(1).replace("_", "")) if found else 0


def counted(invoice: Record) -> bool:
    """``i.status = 1 AND i.self_billed IS FALSE AND i.payment_dispute_lost_at IS NULL``."""
    return (
        invoice["status"] == "finalized"
        and not invoice.get("self_billed")
        and not invoice.get("payment_dispute_lost_at")
    )


def entity_of(invoice: Record) -> str:
    """The invoice's billing entity code (``default`` when unset)."""
    return str(invoice.get("billing_entity_code") or "default")


def entity_id(state: EmulatorState, code: str) -> str:
    """A billing entity's ``id``: the emulator has no billing entity records, so the id is
    derived from the organization id and the code (stable, distinct per code)."""
    return str(uuid.uuid5(uuid.UUID(state.organization_id), code))


def organization_start(state: EmulatorState) -> str:
    """The organization's creation month: the emulator has no organization record, so it is
    the month its first customer, subscription or invoice was made (or now)."""
    made = [parse_iso(r["created_at"]) for r in state.customers.values()]
    made += [parse_iso(r["created_at"]) for r in state.subscriptions.values()]
    made += [parse_iso(r["created_at"]) for r in state.invoices.values()]
    return month_of(min([state.now(), *made]).date().isoformat())


def _entities(state: EmulatorState) -> set[str]:
    codes = {"default"}
    codes.update(str(c.get("billing_entity_code")) for c in state.customers.values())
    codes.update(entity_of(i) for i in state.invoices.values())
    return codes


def _present(value: str | None) -> str | None:
    """ActiveSupport's ``presence`` of a query string."""
    return value if value is not None and value.strip() else None


@dataclass(frozen=True)
class Window:
    """The months shown (``first``..``last``, ``YYYY-MM-01``) and the filters asked for."""

    first: str
    last: str
    currency: str | None = None
    billing_entity: str | None = None
    external_customer_id: str | None = None

    def shows(self, month: str) -> bool:
        """Whether ``month`` is one of ``all_months`` the query keeps."""
        return self.first <= month <= self.last

    def months(self) -> list[str]:
        """Every month shown, oldest first."""
        found, month = [], self.first
        while month <= self.last:
            found.append(month)
            month = add_months(month, 1)
        return found

    def keeps(self, state: EmulatorState, invoice: Record) -> bool:
        """The billing entity and customer filters on an invoice."""
        if self.billing_entity is not None and entity_of(invoice) != self.billing_entity:
            return False
        if self.external_customer_id is None:
            return True
        customer = invoice["customer"]
        current = state.customers.get(self.external_customer_id)
        return (
            customer["external_id"] == self.external_customer_id
            and current is not None
            and current["lago_id"] == customer["lago_id"]
        )


def window(state: EmulatorState, query: QueryParams, *, by_customer: bool) -> Window:
    """The window and filters of one request (``by_customer``: the controller passes
    ``external_customer_id``, as gross revenue and overdue balance do)."""
    last = month_of(state.now().date().isoformat())
    first = organization_start(state)
    months = _present(query.get("months"))
    if months is not None:
        count = ruby_to_i(months)
        first = max(first, add_months(last, -(0 if count <= 1 else count - 1)))
    currency = _present(query.get("currency"))
    code = query.get("billing_entity_code")
    return Window(
        first=first,
        last=last,
        currency=currency.upper() if currency is not None else None,
        billing_entity=code if code in _entities(state) else None,
        external_customer_id=_present(query.get("external_customer_id")) if by_customer else None,
    )


def parse_day(value: str) -> date:
    """An ISO date (or the date of an ISO datetime)."""
    return date.fromisoformat(value[:10])
