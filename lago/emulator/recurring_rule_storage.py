"""Wallets' recurring transaction rules, stored and serialized as Lago does: created with
a wallet, updated (or terminated) by a wallet update, and listed on the wallet.

Follows lago-api's ``app/models/recurring_transaction_rule.rb``,
``app/services/wallets/recurring_transaction_rules/{create,update,terminate}_service.rb``
and ``app/serializers/v1/wallets/recurring_transaction_rule_serializer.rb``. A rule is a
row in its wallet's ``recurring_transaction_rules``, its columns cast as Rails casts them.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .clock import iso, new_id, parse_iso
from .recurring_rule_validation import present
from .state import EmulatorState, Record

_PLACES = Decimal("0.00001")


def _credits(value: Any) -> str:
    """A ``decimal(30, 5)`` column as Rails casts and prints it (``"10.0"``)."""
    try:
        number = Decimal(str(value).strip()) if value is not None else Decimal(0)
    except InvalidOperation:
        number = Decimal(0)
    if not number.is_finite():
        number = Decimal(0)
    text = format(number.quantize(_PLACES, rounding=ROUND_HALF_UP).normalize(), "f")
    return text if "." in text else f"{text}.0"


def _time(value: Any) -> str | None:
    """A datetime column: Rails' cast of a string (``nil`` when it does not parse)."""
    if not present(value):
        return None
    try:
        return iso(parse_iso(str(value)))
    except ValueError:
        return None


def _bool(value: Any) -> bool:
    """``ActiveModel::Type::Boolean#cast``, ``nil`` read as false."""
    return value not in (None, False, 0, "0", "f", "F", "false", "FALSE", "off", "OFF", "")


_COLUMNS: dict[str, Any] = {
    "paid_credits": _credits,
    "granted_credits": _credits,
    "threshold_credits": _credits,
    "target_ongoing_balance": lambda v: None if v is None else _credits(v),
    "started_at": _time,
    "expiration_at": _time,
    "invoice_requires_successful_payment": _bool,
    "ignore_paid_top_up_limits": _bool,
}


def _cast(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: _COLUMNS[k](v) if k in _COLUMNS else v for k, v in attributes.items()}


def _new_rule(state: EmulatorState, wallet: Record, attributes: dict[str, Any]) -> Record:
    """A row with the table's defaults, then ``attributes``."""
    rule: Record = {
        "lago_id": new_id(),
        "lago_wallet_id": wallet["lago_id"],
        "status": "active",
        "trigger": "interval",
        "method": "fixed",
        "interval": "weekly",
        "paid_credits": "0.0",
        "granted_credits": "0.0",
        "threshold_credits": "0.0",
        "target_ongoing_balance": None,
        "grants_target_top_up": None,
        "started_at": None,
        "expiration_at": None,
        "terminated_at": None,
        "created_at": iso(state.now()),
        "invoice_requires_successful_payment": False,
        "ignore_paid_top_up_limits": False,
        "transaction_metadata": [],
        "transaction_name": None,
        "purchase_order_number": None,
        "payment_method": {"payment_method_id": None, "payment_method_type": "provider"},
    }
    rule.update(_cast(attributes))
    wallet.setdefault("recurring_transaction_rules", []).append(rule)
    return rule


def create_with_wallet(state: EmulatorState, wallet: Record, params: dict[str, Any]) -> None:
    """``Wallets::RecurringTransactionRules::CreateService``: the first rule of ``params``
    (a fixed rule without credits takes the wallet's initial ``paid_credits`` and
    ``granted_credits``)."""
    rules = params.get("recurring_transaction_rules")
    if not rules:
        return
    rule_params: dict[str, Any] = rules[0]
    method = rule_params.get("method") or "fixed"
    paid = rule_params.get("paid_credits")
    granted = rule_params.get("granted_credits")
    if method == "fixed" and paid is None and granted is None:
        paid, granted = params.get("paid_credits"), params.get("granted_credits")
    attributes: dict[str, Any] = {
        "paid_credits": paid,
        "granted_credits": granted,
        "threshold_credits": rule_params.get("threshold_credits"),
        "interval": rule_params.get("interval"),
        "method": method,
        "started_at": rule_params.get("started_at"),
        "expiration_at": rule_params.get("expiration_at"),
        "target_ongoing_balance": rule_params.get("target_ongoing_balance"),
        "trigger": str(rule_params.get("trigger") or ""),
        "transaction_metadata": rule_params.get("transaction_metadata") or [],
        "transaction_name": _name(rule_params.get("transaction_name")),
        "purchase_order_number": rule_params.get("purchase_order_number"),
        "grants_target_top_up": (
            _bool(rule_params.get("grants_target_top_up")) if method == "target" else None
        ),
        "invoice_requires_successful_payment": (
            rule_params["invoice_requires_successful_payment"]
            if "invoice_requires_successful_payment" in rule_params
            else wallet["invoice_requires_successful_payment"]
        ),
    }
    if "ignore_paid_top_up_limits" in rule_params:
        attributes["ignore_paid_top_up_limits"] = rule_params["ignore_paid_top_up_limits"]
    _payment_method(attributes, rule_params)
    _new_rule(state, wallet, attributes)


def _name(value: Any) -> Any:
    """``transaction_name.presence``."""
    return value if present(value) else None


def _payment_method(attributes: dict[str, Any], params: dict[str, Any]) -> None:
    given = params.get("payment_method")
    if isinstance(given, dict):
        method = {"payment_method_id": None, "payment_method_type": "provider"}
        method.update({k: given[k] for k in method if k in given})
        attributes["payment_method"] = method


_UPDATABLE = (
    "interval",
    "method",
    "started_at",
    "expiration_at",
    "target_ongoing_balance",
    "threshold_credits",
    "trigger",
    "paid_credits",
    "granted_credits",
    "grants_target_top_up",
    "invoice_requires_successful_payment",
    "ignore_paid_top_up_limits",
    "purchase_order_number",
    "transaction_name",
    "transaction_metadata",
)


def update_rules(state: EmulatorState, wallet: Record, rules: list[dict[str, Any]]) -> None:
    """``Wallets::RecurringTransactionRules::UpdateService``: a payload rule whose ``lago_id``
    is one of the wallet's active rules updates it, any other is created; every rule of the
    wallet not named (nor created) is terminated, so ``[]`` terminates them all."""
    created: list[str] = []
    for payload in rules:
        attributes = {k: payload[k] for k in _UPDATABLE if k in payload}
        if "transaction_name" in attributes:
            attributes["transaction_name"] = _name(attributes["transaction_name"])
        for key in ("paid_credits", "granted_credits", "threshold_credits"):
            if key in attributes and attributes[key] is None:
                attributes[key] = "0.0"
        _payment_method(attributes, payload)
        rule = next(
            (
                r
                for r in wallet.get("recurring_transaction_rules") or []
                if r["lago_id"] == payload.get("lago_id") and active_scope(state, r)
            ),
            None,
        )
        _normalize_grants_target_top_up(attributes, rule)
        if rule is not None:
            rule.update(_cast(attributes))
        else:
            attributes.setdefault(
                "invoice_requires_successful_payment", wallet["invoice_requires_successful_payment"]
            )
            created.append(_new_rule(state, wallet, attributes)["lago_id"])
    kept = {p.get("lago_id") for p in rules if p.get("lago_id") is not None} | set(created)
    for rule in wallet.get("recurring_transaction_rules") or []:
        if rule["lago_id"] not in kept:
            terminate(state, rule)


def _normalize_grants_target_top_up(attributes: dict[str, Any], rule: Record | None) -> None:
    """``UpdateService#normalize_grants_target_top_up!``: a target rule's flag is a boolean
    (false when never set), any other rule's ``nil``."""
    method = str(attributes.get("method") or (rule["method"] if rule else "") or "")
    if method != "target":
        attributes["grants_target_top_up"] = None
    elif "grants_target_top_up" in attributes:
        attributes["grants_target_top_up"] = _bool(attributes["grants_target_top_up"])
    elif rule is None or rule["grants_target_top_up"] is None:
        attributes["grants_target_top_up"] = False


def terminate(state: EmulatorState, rule: Record) -> None:
    """``RecurringTransactionRule#mark_as_terminated!`` (nothing for a terminated rule)."""
    if rule["status"] != "terminated":
        rule["terminated_at"] = rule["terminated_at"] or iso(state.now())
        rule["status"] = "terminated"


def active_scope(state: EmulatorState, rule: Record) -> bool:
    """The ``active`` scope and ``currently_active?``: active and not past ``expiration_at``."""
    expires = rule["expiration_at"]
    return rule["status"] == "active" and (expires is None or parse_iso(expires) > state.now())


def serialize_rules(state: EmulatorState, wallet: Record) -> list[Record]:
    """The wallet's currently active rules, as ``V1::WalletSerializer`` includes them."""
    return [
        serialize_rule(rule)
        for rule in wallet.get("recurring_transaction_rules") or []
        if active_scope(state, rule)
    ]


def serialize_rule(rule: Record) -> Record:
    """``V1::Wallets::RecurringTransactionRuleSerializer`` (``grants_target_top_up?`` shows
    ``nil`` as false)."""
    return {
        "lago_id": rule["lago_id"],
        "paid_credits": rule["paid_credits"],
        "granted_credits": rule["granted_credits"],
        "grants_target_top_up": bool(rule["grants_target_top_up"]),
        "interval": rule["interval"],
        "method": rule["method"],
        "started_at": rule["started_at"],
        "expiration_at": rule["expiration_at"],
        "status": rule["status"],
        "target_ongoing_balance": rule["target_ongoing_balance"],
        "threshold_credits": rule["threshold_credits"],
        "trigger": rule["trigger"],
        "created_at": rule["created_at"],
        "invoice_requires_successful_payment": rule["invoice_requires_successful_payment"],
        "transaction_metadata": rule["transaction_metadata"],
        "transaction_name": rule["transaction_name"],
        "purchase_order_number": rule["purchase_order_number"],
        "ignore_paid_top_up_limits": rule["ignore_paid_top_up_limits"],
        "applied_invoice_custom_sections": [],
        # Lago sends ``payment_method_id: null``, which the OpenAPI spec does not allow; the
        # emulator leaves a null id out, as it does on wallet transactions.
        "payment_method": {k: v for k, v in rule["payment_method"].items() if v is not None},
    }
