"""Credit note lists (``CreditNotesQuery``) and the estimate (``CreditNotes::EstimateService``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import credit_note_rules as rules
from .customers import get_customer
from .errors import MethodNotAllowed, NotFound
from .http import ok, paginate, query_list, read_root, state_of
from .invoices import get_invoice
from .state import EmulatorState, Record

Check = Callable[[Record], bool]


def _listed(request: Request, name: str, allowed: tuple[str, ...]) -> list[str]:
    """``CreditNotesQuery#valid_*``: the values Lago knows; unknown ones are dropped."""
    return [v for v in query_list(request, name) if v in allowed]


def _day(value: str | None) -> date | None:
    """``valid_date?``: an ISO 8601 date, else the filter is off."""
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _cents(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _of_type(types: list[str]) -> Check:
    """``CreditNotesQuery#with_types``: any of the named parts is positive."""
    return lambda n: any(n[f"{t}_amount_cents"] > 0 for t in types)


def _searched(term: str) -> Check:
    """``CreditNotesQuery#search_params``: id, number or the customer's name, external id
    or email contains the term (case-insensitive, as ``_cont`` on PostgreSQL's ILIKE)."""
    term = term.lower()
    keys = ("name", "firstname", "lastname", "external_id", "email")

    def check(note: Record) -> bool:
        texts = [note["lago_id"], note["number"], *(note["customer"].get(k) for k in keys)]
        return any(term in str(t).lower() for t in texts if t)

    return check


def _enums(request: Request) -> list[Check]:
    checks: list[Check] = []
    for name, allowed in (
        ("reason", rules.REASONS),
        ("credit_status", rules.CREDIT_STATUSES),
        ("refund_status", rules.REFUND_STATUSES),
    ):
        values = _listed(request, name, allowed)
        if values:
            checks.append(lambda n, k=name, v=values: n[k] in v)  # type: ignore[misc]
    types = query_list(request, "types")
    if types:  # unknown types only: Lago answers none (``scope.none``)
        checks.append(_of_type([t for t in types if t in rules.TYPES]))
    return checks


def _checks(request: Request, external_customer_id: str | None) -> list[Check]:
    """The filters of ``CreditNoteIndex#credit_note_index`` that are given."""
    query = request.query_params
    checks = _enums(request)
    if external_customer_id is not None:
        checks.append(lambda n: n["customer"]["external_id"] == external_customer_id)
    for name in ("currency", "invoice_number"):
        if query.get(name):
            checks.append(lambda n, k=name, v=query[name]: n[k] == v)  # type: ignore[misc]
    start, end = _day(query.get("issuing_date_from")), _day(query.get("issuing_date_to"))
    if start:
        checks.append(lambda n: date.fromisoformat(n["issuing_date"]) >= start)
    if end:
        checks.append(lambda n: date.fromisoformat(n["issuing_date"]) <= end)
    low, high = _cents(query.get("amount_from")), _cents(query.get("amount_to"))
    if low is not None:
        checks.append(lambda n: n["total_amount_cents"] >= low)
    if high is not None:
        checks.append(lambda n: n["total_amount_cents"] <= high)
    if query.get("self_billed") not in (None, ""):
        billed = query["self_billed"].lower() in ("true", "1", "t", "yes")
        checks.append(lambda n: bool(n.get("self_billed")) == billed)
    if query.get("search_term"):
        checks.append(_searched(query["search_term"]))
    return checks


def _entity_codes(request: Request) -> None:
    """``billing_entity_codes[]``: 404 ``billing_entity_not_found`` unless each is known (the
    emulator has one billing entity, ``default``)."""
    codes = query_list(request, "billing_entity_codes")
    if any(code != "default" for code in codes):
        raise NotFound("billing_entity")


def _listing(request: Request, external_customer_id: str | None) -> Response:
    _entity_codes(request)
    checks = _checks(request, external_customer_id)
    notes = reversed(state_of(request).credit_notes.values())
    return paginate(request, "credit_notes", [n for n in notes if all(c(n) for c in checks)])


async def index(request: Request) -> Response:
    """GET /credit_notes (``external_customer_id`` and CreditNotesQuery's filters), newest
    first."""
    return _listing(request, request.query_params.get("external_customer_id"))


async def customer_index(request: Request) -> Response:
    """GET /customers/{external_customer_id}/credit_notes (404 ``customer_not_found``)."""
    customer = get_customer(state_of(request), request.path_params["external_customer_id"])
    return _listing(request, str(customer["external_id"]))


def _estimate_type(invoice: Record, wallet: Record | None) -> None:
    """``EstimateService#valid_type_or_status?``: a credit invoice must be paid and its
    wallet active; drafts have no credit notes in the emulator."""
    if invoice["status"] not in ("finalized", "voided"):
        raise MethodNotAllowed("invalid_type_or_status")
    if invoice["invoice_type"] == "credit" and (
        invoice["payment_status"] != "succeeded" or wallet is None
    ):
        raise MethodNotAllowed("invalid_type_or_status")


def _due(state: EmulatorState, invoice: Record) -> int:
    """``Invoice#total_due_amount_cents`` (0 once voided)."""
    if invoice["status"] == "voided":
        return 0
    paid = invoice["total_paid_amount_cents"] + rules.earlier(state, invoice, "offset_amount_cents")
    return int(invoice["total_amount_cents"]) - int(paid)


def estimate_credit_note(state: EmulatorState, params: dict[str, Any]) -> Record:
    """``CreditNotes::EstimateService``: the items' amounts, how much may be credited and
    refunded (``compute_amounts_and_taxes``); nothing is stored."""
    invoice = get_invoice(state, str(params.get("invoice_id")))
    _estimate_type(invoice, rules.credit_wallet(state, invoice))
    items = rules.items(state, invoice, params.get("items"))
    amount = sum(a for _, a in items)
    credit = 0 if invoice["invoice_type"] == "credit" else amount
    refund = min(amount, rules.refundable(state, invoice))
    return {
        "lago_invoice_id": invoice["lago_id"],
        "invoice_number": invoice["number"],
        "currency": invoice["currency"],
        "taxes_amount_cents": 0,
        "precise_taxes_amount_cents": 0.0,
        "sub_total_excluding_taxes_amount_cents": amount,
        "max_creditable_amount_cents": credit,
        "max_refundable_amount_cents": refund,
        "max_offsettable_amount_cents": max(0, min(_due(state, invoice), credit)),
        "coupons_adjustment_amount_cents": 0,
        "precise_coupons_adjustment_amount_cents": 0.0,
        "taxes_rate": 0.0,
        "items": [{"lago_fee_id": fee["lago_id"], "amount_cents": a} for fee, a in items],
        "applied_taxes": [],
    }


async def estimate(request: Request) -> Response:
    """POST /credit_notes/estimate (root ``credit_note``: ``invoice_id`` and ``items``)."""
    params = await read_root(request, "credit_note")
    return ok({"estimated_credit_note": estimate_credit_note(state_of(request), params)})
