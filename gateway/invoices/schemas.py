"""Invoice list filters, read once and passed to Lago, the CSV export and the finance pages."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Protocol

from pydantic import BaseModel

from gateway.errors import ValidationFailed

STATUSES = ("draft", "finalized", "failed", "pending", "voided")
PAYMENT_STATUSES = ("pending", "succeeded", "failed")
INVOICE_TYPES = (
    "subscription",
    "add_on",
    "credit",
    "one_off",
    "advance_charges",
    "progressive_billing",
)
LAGO_ID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_METADATA_KEY = re.compile(r"^metadata\[([^\]]{1,100})\]$")
MAX_PER_PAGE = 100


class QueryLike(Protocol):
    """What a Starlette ``QueryParams`` offers (a multi-dict of strings)."""

    def getlist(self, key: str) -> list[str]: ...

    def __getitem__(self, key: str) -> str: ...

    def __contains__(self, key: object) -> bool: ...

    def __iter__(self) -> Iterator[str]: ...


def _get(query: QueryLike, name: str) -> str | None:
    return query[name] if name in query else None  # noqa: SIM401 (a protocol without get)


@dataclass(frozen=True)
class InvoiceFilters:
    """Lago's invoice list filters (LAGO_NOTES §4), validated, in Lago's wire names."""

    external_customer_id: str | None = None
    statuses: tuple[str, ...] = ()
    payment_statuses: tuple[str, ...] = ()
    issuing_date_from: date | None = None
    issuing_date_to: date | None = None
    currency: str | None = None
    invoice_type: str | None = None
    amount_from: int | None = None
    amount_to: int | None = None
    payment_overdue: bool | None = None
    payment_dispute_lost: bool | None = None
    self_billed: bool | None = None
    search_term: str | None = None
    billing_entity_codes: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = field(default=())

    def to_params(self) -> list[tuple[str, str]]:
        """The query Lago expects (arrays as ``name[]``, booleans as ``true``/``false``)."""
        params: list[tuple[str, str]] = []
        for name in ("external_customer_id", "currency", "invoice_type", "search_term"):
            value = getattr(self, name)
            if value:
                params.append((name, value))
        for name in ("issuing_date_from", "issuing_date_to"):
            day = getattr(self, name)
            if day is not None:
                params.append((name, day.isoformat()))
        for name in ("amount_from", "amount_to"):
            if getattr(self, name) is not None:
                params.append((name, str(getattr(self, name))))
        for name in ("payment_overdue", "payment_dispute_lost", "self_billed"):
            flag = getattr(self, name)
            if flag is not None:
                params.append((name, "true" if flag else "false"))
        params += [("statuses[]", s) for s in self.statuses]
        params += [("payment_statuses[]", s) for s in self.payment_statuses]
        params += [("billing_entity_codes[]", c) for c in self.billing_entity_codes]
        params += [(f"metadata[{key}]", value) for key, value in self.metadata]
        return params

    def with_(self, **changes: Any) -> InvoiceFilters:
        return replace(self, **changes)


def _list(query: QueryLike, name: str) -> list[str]:
    values = query.getlist(f"{name}[]") or query.getlist(name)
    found: list[str] = []
    for value in values:
        found += [part.strip() for part in str(value).split(",") if part.strip()]
    return found


def _choices(
    query: QueryLike, names: Sequence[str], allowed: Sequence[str], errors: dict[str, list[str]]
) -> tuple[str, ...]:
    values: list[str] = []
    for name in names:
        values += _list(query, name)
    bad = [v for v in values if v not in allowed]
    if bad:
        errors[names[0]] = ["invalid_value"]
    return tuple(dict.fromkeys(values))


def _text(query: QueryLike, *names: str) -> str | None:
    for name in names:
        value = _get(query, name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _date(query: QueryLike, name: str, errors: dict[str, list[str]]) -> date | None:
    value = _text(query, name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = ["invalid_date"]
        return None


def _int(query: QueryLike, name: str, errors: dict[str, list[str]]) -> int | None:
    value = _text(query, name)
    if value is None:
        return None
    if not value.isdigit():
        errors[name] = ["invalid_value"]
        return None
    return int(value)


def _bool(query: QueryLike, name: str, errors: dict[str, list[str]]) -> bool | None:
    value = _text(query, name)
    if value is None:
        return None
    if value.lower() not in _BOOLEANS:
        errors[name] = ["invalid_value"]
        return None
    return _BOOLEANS[value.lower()]


def _metadata(query: QueryLike) -> tuple[tuple[str, str], ...]:
    pairs = []
    for key in query:
        match = _METADATA_KEY.match(str(key))
        if match:
            pairs.append((match.group(1), str(query[key])))
    return tuple(pairs)


def parse_filters(query: QueryLike) -> InvoiceFilters:
    """Read Lago's filters from a query (singular and ``[]`` forms both accepted), or 422."""
    errors: dict[str, list[str]] = {}
    currency = _text(query, "currency")
    if currency is not None and not re.fullmatch(r"[A-Za-z]{3}", currency):
        errors["currency"] = ["invalid_value"]
    invoice_type = _text(query, "invoice_type")
    if invoice_type is not None and invoice_type not in INVOICE_TYPES:
        errors["invoice_type"] = ["invalid_value"]
    filters = InvoiceFilters(
        external_customer_id=_text(query, "external_customer_id", "customer_external_id"),
        statuses=_choices(query, ("statuses", "status"), STATUSES, errors),
        payment_statuses=_choices(
            query, ("payment_statuses", "payment_status"), PAYMENT_STATUSES, errors
        ),
        issuing_date_from=_date(query, "issuing_date_from", errors),
        issuing_date_to=_date(query, "issuing_date_to", errors),
        currency=currency.upper() if currency else None,
        invoice_type=invoice_type,
        amount_from=_int(query, "amount_from", errors),
        amount_to=_int(query, "amount_to", errors),
        payment_overdue=_bool(query, "payment_overdue", errors),
        payment_dispute_lost=_bool(query, "payment_dispute_lost", errors),
        self_billed=_bool(query, "self_billed", errors),
        search_term=_text(query, "search_term"),
        billing_entity_codes=tuple(_list(query, "billing_entity_codes")),
        metadata=_metadata(query),
    )
    if errors:
        raise ValidationFailed(details=errors)
    return filters


def parse_page(query: QueryLike, default_per_page: int = 20) -> tuple[int, int]:
    """``page`` (from 1) and ``per_page`` (1..100), or 422."""
    errors: dict[str, list[str]] = {}
    values = {}
    for name, default, top in (("page", 1, 1 << 31), ("per_page", default_per_page, MAX_PER_PAGE)):
        raw = _get(query, name)
        text = str(raw).strip() if raw is not None else ""
        if not text:
            values[name] = default
        elif not text.isdigit() or not 1 <= int(text) <= top:
            errors[name] = ["invalid_value"]
        else:
            values[name] = int(text)
    if errors:
        raise ValidationFailed(details=errors)
    return values["page"], values["per_page"]


class PdfPending(BaseModel):
    """The PDF is being generated by Lago; ask again shortly."""

    status: str = "generating"
    lago_id: str


def parse_listing(query: QueryLike, default_per_page: int) -> tuple[InvoiceFilters, int, int]:
    """Filters and page together, every problem reported at once (422)."""
    details: dict[str, list[str]] = {}
    filters, page, per_page = InvoiceFilters(), 1, default_per_page
    try:
        filters = parse_filters(query)
    except ValidationFailed as exc:
        details.update(exc.details or {})
    try:
        page, per_page = parse_page(query, default_per_page)
    except ValidationFailed as exc:
        details.update(exc.details or {})
    if details:
        raise ValidationFailed(details=details)
    return filters, page, per_page
