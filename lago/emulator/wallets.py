"""Prepaid-credit wallets and their balances."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .clock import iso, new_id
from .errors import NotFound, ValidationFailed, missing
from .invoicing import announce, create_invoice
from .outbox import emit
from .pricing import to_cents, units_text
from .recurring_rules import create_with_wallet, rules_error, serialize_rules
from .state import EmulatorState, Record
from .usage import customer_usage_cents

SETTABLE = (
    "name",
    "code",
    "priority",
    "expiration_at",
    "invoice_requires_successful_payment",
    "purchase_order_number",
    "applies_to",
)


def credits_of(wallet: Record) -> Decimal:
    """The settled credits."""
    return Decimal(wallet["credits_balance"])


def set_credits(wallet: Record, credits: Decimal) -> None:
    """Store a new settled balance in every field that shows it."""
    cents = to_cents(credits * Decimal(wallet["rate_amount"]))
    wallet.update(
        credits_balance=units_text(credits),
        balance_cents=cents,
        balance=units_text(Decimal(cents) / 100),
    )


def serialize(state: EmulatorState, wallet: Record) -> Record:
    """The response object, with ongoing balances net of current usage and the currently
    active recurring transaction rules."""
    usage = 0
    customer = state.customers.get(wallet["external_customer_id"])
    if (
        wallet["status"] == "active"
        and customer
        and customer.get("currency") in (None, wallet["currency"])
    ):
        usage = customer_usage_cents(state, wallet["external_customer_id"])
    usage_credits = Decimal(usage) / 100 / Decimal(wallet["rate_amount"])
    return {
        **wallet,
        "ongoing_usage_balance_cents": usage,
        "ongoing_balance_cents": wallet["balance_cents"] - usage,
        "credits_ongoing_usage_balance": units_text(usage_credits),
        "credits_ongoing_balance": units_text(credits_of(wallet) - usage_credits),
        "recurring_transaction_rules": serialize_rules(state, wallet),
    }


def _new_wallet(state: EmulatorState, customer: Record, params: dict[str, Any]) -> Record:
    wallet: Record = {
        "lago_id": new_id(),
        "lago_customer_id": customer["lago_id"],
        "external_customer_id": customer["external_id"],
        "billing_entity_code": customer.get("billing_entity_code"),
        "status": "active",
        "currency": params["currency"],
        "name": None,
        "code": None,
        "priority": 50,
        "rate_amount": units_text(Decimal(str(params["rate_amount"]))),
        "consumed_credits": "0.0",
        "created_at": iso(state.now()),
        "expiration_at": None,
        "last_balance_sync_at": None,
        "last_consumed_credit_at": None,
        "terminated_at": None,
        "invoice_requires_successful_payment": False,
        "recurring_transaction_rules": [],
    }
    set_credits(wallet, Decimal(0))
    for key in SETTABLE:
        if params.get(key) is not None:
            wallet[key] = params[key]
    return wallet


MAXIMUM_WALLETS_PER_CUSTOMER = 6


def _check_new(state: EmulatorState, params: dict[str, Any]) -> Record:
    """Lago's Wallets::ValidateService: an unknown customer is a 422 on ``customer``
    (``customer_not_found``), as is a seventh wallet (``wallet_limit_reached``)."""
    customer = state.customers.get(str(params.get("external_customer_id") or ""))
    if customer is None:
        raise ValidationFailed({"customer": ["customer_not_found"]})
    active = [
        w
        for w in state.wallets.values()
        if w["external_customer_id"] == customer["external_id"] and w["status"] == "active"
    ]
    if len(active) >= MAXIMUM_WALLETS_PER_CUSTOMER:
        raise ValidationFailed({"customer": ["wallet_limit_reached"]})
    for name in ("rate_amount", "currency"):
        if not params.get(name):
            raise missing(name)
    rules = params.get("recurring_transaction_rules")
    if rules not in (None, []) and (error := rules_error(state, rules)):
        raise ValidationFailed({"recurring_transaction_rules": [error]})
    if customer.get("currency") not in (None, params["currency"]):
        raise ValidationFailed({"currency": ["currencies_does_not_match"]})
    if params.get("code") and any(
        w["code"] == params["code"] and w["external_customer_id"] == customer["external_id"]
        for w in state.wallets.values()
    ):
        raise ValidationFailed({"code": ["value_already_exist"]})
    return customer


def create_wallet(state: EmulatorState, params: dict[str, Any]) -> Record:
    """A wallet for an existing customer, topped up with any initial credits."""
    customer = _check_new(state, params)
    customer["currency"] = customer.get("currency") or params["currency"]
    wallet = _new_wallet(state, customer, params)
    state.wallets[wallet["lago_id"]] = wallet
    create_with_wallet(state, wallet, params)
    emit(state, "wallet.created", "wallet", serialize(state, wallet))
    top_up(state, wallet, params)
    return wallet


def get_wallet(state: EmulatorState, lago_id: str) -> Record:
    """The wallet, or 404 ``wallet_not_found``."""
    wallet = state.wallets.get(lago_id)
    if wallet is None:
        raise NotFound("wallet")
    return wallet


def _transaction(wallet: Record, now: str, credits: Decimal, **fields: Any) -> Record:
    amount = credits * Decimal(wallet["rate_amount"])
    return {
        "lago_id": new_id(),
        "lago_wallet_id": wallet["lago_id"],
        "lago_invoice_id": None,
        "lago_credit_note_id": None,
        "lago_voided_invoice_id": None,
        "status": "settled",
        "source": "manual",
        "transaction_status": "granted",
        "transaction_type": "inbound",
        "amount": units_text(amount),
        "credit_amount": units_text(credits),
        "remaining_amount_cents": None,
        "remaining_credit_amount": None,
        "priority": wallet["priority"],
        "purchase_order_number": wallet.get("purchase_order_number"),
        "created_at": now,
        "settled_at": now,
        "failed_at": None,
        "invoice_requires_successful_payment": wallet["invoice_requires_successful_payment"],
        "metadata": [],
        "name": None,
        "payment_method": {"payment_method_type": "provider"},
        **fields,
    }


def _credit_invoice(state: EmulatorState, wallet: Record, transaction: Record) -> Record:
    fee = {
        "amount_cents": to_cents(Decimal(transaction["amount"])),
        "units": transaction["credit_amount"],
        "item": {
            "type": "credit",
            "code": "credit",
            "name": "Credit",
            "lago_item_id": transaction["lago_id"],
            "item_type": "WalletTransaction",
        },
    }
    customer = state.customers[wallet["external_customer_id"]]
    invoice = create_invoice(
        state, customer, [fee], currency=wallet["currency"], invoice_type="credit"
    )
    announce(state, invoice)
    return invoice


_MAX_AMOUNT = Decimal(10**25 - 1)


def _amount(value: Any) -> Decimal | None:
    """``Validators::DecimalAmountService#valid_amount?``: a string holding a finite decimal
    from 0 to ``MAX_AMOUNT``; a JSON number is refused."""
    if not isinstance(value, str):
        return None
    try:
        amount = Decimal(value.strip())
    except ArithmeticError:
        return None
    return amount if amount.is_finite() and 0 <= amount <= _MAX_AMOUNT else None


def _transaction_errors(wallet: Record, params: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for key in ("paid_credits", "granted_credits", "voided_credits"):
        value = params.get(key)
        if value is None or value is False:
            continue
        amount = _amount(value)
        if amount is None:
            errors[key] = [f"invalid_{key}", "invalid_amount"]
        elif key == "voided_credits" and amount > credits_of(wallet):
            errors[key] = ["insufficient_credits"]
    name = params.get("name")
    if name not in (None, "") and not isinstance(name, str):
        errors["name"] = ["invalid_value"]
    elif isinstance(name, str) and len(name) > 255:
        errors["name"] = ["too_long"]
    return errors


def check_transaction(state: EmulatorState, params: dict[str, Any]) -> Record:
    """The wallet a ``POST /wallet_transactions`` may credit, or 422 with every error
    (lago-api ``app/services/wallet_transactions/validate_service.rb``)."""
    wallet = state.wallets.get(str(params.get("wallet_id")))
    if wallet is None:
        raise ValidationFailed({"wallet_id": ["wallet_not_found"]})
    errors = _transaction_errors(wallet, params)
    if wallet["status"] == "terminated":
        errors = {"wallet_id": ["wallet_is_terminated"], **errors}
    if errors:
        raise ValidationFailed(errors)
    return wallet


def _credits(params: dict[str, Any], key: str) -> Decimal:
    value = params.get(key)
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


_TOP_UPS: dict[str, dict[str, Any]] = {
    "paid_credits": {"status": "pending", "settled_at": None, "transaction_status": "purchased"},
    "granted_credits": {},
    "voided_credits": {"transaction_status": "voided", "transaction_type": "outbound"},
}


def transaction_fields(params: dict[str, Any]) -> dict[str, Any]:
    """What ``POST /wallet_transactions`` sets on each transaction it makes
    (``WalletTransactions::CreateFromParamsService#call``: priority 50 unless given)."""
    return {
        "metadata": params.get("metadata") or [],
        "priority": params.get("priority") or 50,
        "purchase_order_number": params.get("purchase_order_number"),
    }


def top_up(
    state: EmulatorState,
    wallet: Record,
    params: dict[str, Any],
    given: dict[str, Any] | None = None,
) -> list[Record]:
    """Transactions for ``paid_credits`` (pending until their credit invoice is paid),
    ``granted_credits`` (settled now) and ``voided_credits`` (settled now, outbound);
    ``given`` overrides their fields."""
    amounts = {key: _credits(params, key) for key in _TOP_UPS}
    now = iso(state.now())
    given = given or {}
    made: list[Record] = []
    for key, fields in _TOP_UPS.items():
        credits = amounts[key]
        if credits <= 0:
            continue
        transaction = _transaction(
            wallet, now, credits, name=params.get("name") or None, **given, **fields
        )
        if key == "paid_credits":
            transaction["lago_invoice_id"] = _credit_invoice(state, wallet, transaction)["lago_id"]
        else:
            change = -credits if key == "voided_credits" else credits
            set_credits(wallet, credits_of(wallet) + change)
        state.wallet_transactions[transaction["lago_id"]] = transaction
        emit(state, "wallet_transaction.created", "wallet_transaction", transaction)
        made.append(transaction)
    return made


def settle_paid_credits(state: EmulatorState, invoice: Record) -> None:
    """Follow a ``credit`` invoice's payment: succeeded adds the credits, failed fails them."""
    outcome = invoice["payment_status"]
    if invoice["invoice_type"] != "credit" or outcome not in ("succeeded", "failed"):
        return
    now = iso(state.now())
    for transaction in state.wallet_transactions.values():
        if (
            transaction["lago_invoice_id"] != invoice["lago_id"]
            or transaction["status"] != "pending"
        ):
            continue
        if outcome == "succeeded":
            wallet = state.wallets[transaction["lago_wallet_id"]]
            set_credits(wallet, credits_of(wallet) + Decimal(transaction["credit_amount"]))
            transaction.update(status="settled", settled_at=now)
        else:
            transaction.update(status="failed", failed_at=now)
        emit(state, "wallet_transaction.updated", "wallet_transaction", transaction)


def consume(state: EmulatorState, invoice: Record, due_cents: int) -> int:
    """Pay up to ``due_cents`` of ``invoice`` from the customer's active wallets; the cents used."""
    used_total = 0
    customer_id = invoice["customer"]["external_id"]
    wallets = sorted(
        (
            w
            for w in state.wallets.values()
            if w["external_customer_id"] == customer_id
            and w["status"] == "active"
            and w["currency"] == invoice["currency"]
        ),
        key=lambda w: w["priority"],
    )
    for wallet in wallets:
        used = min(wallet["balance_cents"], due_cents - used_total)
        if used <= 0:
            continue
        credits = Decimal(used) / 100 / Decimal(wallet["rate_amount"])
        now = iso(state.now())
        transaction = _transaction(
            wallet,
            now,
            credits,
            transaction_status="invoiced",
            transaction_type="outbound",
            lago_invoice_id=invoice["lago_id"],
        )
        state.wallet_transactions[transaction["lago_id"]] = transaction
        set_credits(wallet, credits_of(wallet) - credits)
        consumed = Decimal(wallet["consumed_credits"]) + credits
        wallet.update(consumed_credits=units_text(consumed), last_consumed_credit_at=now)
        used_total += used
    return used_total
