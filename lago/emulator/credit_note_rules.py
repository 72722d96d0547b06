"""What a credit note may take from its invoice: Lago's credit note validations and amounts.

Taxes and coupon adjustments are not modelled (the emulator's fees carry neither), so an
item's amount is what it credits. Credit (prepaid credit) invoices follow Lago's special
rules: refund or offset only, bounded by what is left in the wallet they filled.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .errors import MethodNotAllowed, NotFound, ValidationFailed
from .state import EmulatorState, Record

REFUND_STATUSES = ("pending", "succeeded", "failed")  # CreditNote::REFUND_STATUS
CREDIT_STATUSES = ("available", "consumed", "voided")  # CreditNote::CREDIT_STATUS
TYPES = ("credit", "refund", "offset")  # CreditNote::TYPES
REASONS = (  # CreditNote::REASON
    "duplicated_charge",
    "product_unsatisfactory",
    "order_change",
    "order_cancellation",
    "fraudulent_charge",
    "other",
)


def notes_of(state: EmulatorState, invoice: Record) -> list[Record]:
    """The invoice's credit notes (all finalized: the emulator makes no drafts)."""
    return [n for n in state.credit_notes.values() if n["lago_invoice_id"] == invoice["lago_id"]]


def earlier(state: EmulatorState, invoice: Record, key: str) -> int:
    """The sum of ``key`` over the invoice's credit notes."""
    return sum(int(n[key]) for n in notes_of(state, invoice))


def credit_wallet(state: EmulatorState, invoice: Record) -> Record | None:
    """``Invoice#associated_active_wallet``: the active wallet a credit invoice topped up."""
    if invoice["invoice_type"] != "credit" or not invoice["fees"]:
        return None
    transaction = state.wallet_transactions.get(str(invoice["fees"][0]["item"]["lago_item_id"]))
    wallet = state.wallets.get(str(transaction["lago_wallet_id"])) if transaction else None
    return wallet if wallet is not None and wallet["status"] == "active" else None


def _wallet_cents(state: EmulatorState, invoice: Record) -> int:
    """``Fee#creditable_from_wallet_amount_cents`` (non-traceable wallet: its balance)."""
    wallet = credit_wallet(state, invoice)
    return int(wallet["balance_cents"]) if wallet is not None else 0


def fee_creditable(state: EmulatorState, invoice: Record, fee: Record) -> int:
    """``Fee#creditable_amount_cents``: what credit note items have not taken yet, and for a
    credit fee no more than the wallet still holds."""
    taken = sum(
        int(item["amount_cents"])
        for note in notes_of(state, invoice)
        for item in note["items"]
        if item["fee"]["lago_id"] == fee["lago_id"]
    )
    remaining = int(fee["amount_cents"]) - taken
    if invoice["invoice_type"] == "credit":
        return min(remaining, _wallet_cents(state, invoice))
    return remaining


def creditable(state: EmulatorState, invoice: Record) -> int:
    """``Invoice#creditable_amount_cents`` (0 for a credit invoice)."""
    if invoice["invoice_type"] == "credit" or invoice["status"] == "draft":
        return 0
    return sum(fee_creditable(state, invoice, fee) for fee in invoice["fees"])


def refundable(state: EmulatorState, invoice: Record) -> int:
    """``Invoice#refundable_amount_cents``."""
    paid, total = int(invoice["total_paid_amount_cents"]), int(invoice["total_amount_cents"])
    if invoice["status"] == "draft" or (invoice["payment_status"] != "succeeded" and paid == total):
        return 0
    remaining = paid - earlier(state, invoice, "refund_amount_cents")
    if invoice["invoice_type"] == "credit":
        return min(_wallet_cents(state, invoice), remaining)
    return max(min(remaining, creditable(state, invoice)), 0)


def check_type_or_status(state: EmulatorState, invoice: Record, amounts: dict[str, int]) -> None:
    """``CreditNotes::CreateService#valid_type_or_status?``: a credit invoice needs its active
    wallet, and its payment (only an offset may settle an unpaid one); 405 otherwise."""
    if invoice["invoice_type"] != "credit":
        return
    unpaid = invoice["payment_status"] in ("pending", "failed")
    refused = credit_wallet(state, invoice) is None or (
        (amounts["credit"] > 0 or amounts["refund"] > 0)
        if unpaid
        else invoice["payment_status"] != "succeeded"
    )
    if refused:
        raise MethodNotAllowed("invalid_type_or_status")


def _item_errors(state: EmulatorState, invoice: Record, fee: Record, amount: int) -> list[str]:
    """``CreditNotes::ValidateItemService#valid_item_amount?`` and ``valid_individual_amount?``."""
    errors = ["invalid_value"] if amount < 0 else []
    if amount <= fee_creditable(state, invoice, fee):
        return errors
    if invoice["invoice_type"] == "credit":
        if invoice["payment_status"] in ("pending", "failed"):
            return errors
        if amount > _wallet_cents(state, invoice):
            return [*errors, "higher_than_wallet_balance"]
    return [*errors, "higher_than_remaining_fee_amount"]


def items(state: EmulatorState, invoice: Record, raw: Any) -> list[tuple[Record, int]]:
    """``CreateService#create_items`` with ``ValidateItemService``: a list of items, each of a
    fee of the invoice (404 ``fee_not_found``) within what is left of it; stops at the first
    refused item, as Lago's loop does."""
    if not isinstance(raw, list):
        raise ValidationFailed({"items": ["must_be_an_array"]})
    fees = {fee["lago_id"]: fee for fee in invoice["fees"]}
    found = []
    for item in raw:
        fee = fees.get(str(item.get("fee_id"))) if isinstance(item, dict) else None
        if fee is None:
            raise NotFound("fee")
        amount = int(item.get("amount_cents") or 0)
        errors = _item_errors(state, invoice, fee, amount)
        if errors:
            raise ValidationFailed({"amount_cents": errors})
        found.append((fee, amount))
    return found


def amount_errors(
    state: EmulatorState, invoice: Record, amounts: dict[str, int], items_total: int
) -> dict[str, list[str]]:
    """``CreditNotes::ValidateService#valid?``: every failed check, in Lago's order."""
    credit, refund, offset = amounts["credit"], amounts["refund"], amounts["offset"]
    total = credit + refund + offset
    credited = earlier(state, invoice, "credit_amount_cents")
    offsetted, refunded = (
        earlier(state, invoice, k) for k in ("offset_amount_cents", "refund_amount_cents")
    )
    room = invoice["fees_amount_cents"] - credited - offsetted
    is_credit = invoice["invoice_type"] == "credit"
    errors: dict[str, list[str]] = {}

    def add(field: str, code: str) -> None:
        errors.setdefault(field, []).append(code)

    if abs(total - items_total) > 1:
        add("base", "does_not_match_item_amounts")
    for code in _refund_errors(invoice, refund, refunded):
        add("refund_amount_cents", code)
    if is_credit and credit > 0:
        add("credit_amount_cents", "cannot_credit_invoice")
    elif credit - room > 1:
        add("credit_amount_cents", "higher_than_remaining_invoice_amount")
    offset_error = _offset_error(invoice, offset, room, offsetted)
    if offset_error:
        add("offset_amount_cents", offset_error)
    if total - (room - refunded) > 1:
        add("base", "higher_than_remaining_invoice_amount")
    if total <= 0:
        add("base", "total_amount_must_be_positive")
    return errors


def _refund_errors(invoice: Record, refund: int, refunded: int) -> list[str]:
    """``ValidateService#valid_invoice_status?`` and ``valid_refund_amount?``."""
    if refund <= 0:
        return []
    paid = int(invoice["total_paid_amount_cents"])
    errors = []
    if invoice["payment_status"] != "succeeded" and paid == invoice["total_amount_cents"] > 0:
        errors.append("cannot_refund_unpaid_invoice")
    if paid <= 0:
        errors.append("cannot_refund_unpaid_invoice")
    elif refund > paid - refunded:
        errors.append("higher_than_remaining_invoice_amount")
    return errors


def _offset_error(invoice: Record, offset: int, room: int, offsetted: int) -> str | None:
    """``ValidateService#valid_offset_amount?`` and ``valid_credit_invoice_application?``."""
    if not offset:
        return None
    if invoice["invoice_type"] == "credit":
        if invoice["total_paid_amount_cents"] > 0:
            return "cannot_apply_to_paid_invoice"
        if offset != invoice["total_amount_cents"]:
            return "not_equal_to_total_amount"
    due = int(invoice["total_amount_cents"]) - int(invoice["total_paid_amount_cents"]) - offsetted
    return "higher_than_remaining_invoice_amount" if offset > min(due, room) else None


def wallet_credits(wallet: Record, cents: int) -> Decimal:
    """``WalletCredit.from_amount_cents``: the credits worth ``cents`` at the wallet's rate."""
    return Decimal(cents) / 100 / Decimal(wallet["rate_amount"])
