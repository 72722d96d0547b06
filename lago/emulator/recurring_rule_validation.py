"""Wallets' recurring transaction rules, validated as Lago validates them: one rule's
trigger, method, credits, metadata and expiration, and at most one rule per request.

Follows lago-api's
``app/services/wallets/recurring_transaction_rules/validate_service.rb``,
``app/services/wallets/validate_recurring_transaction_rules_service.rb`` and the validators
it calls (``Validators::DecimalAmountService``, ``Validators::MetadataValidator``,
``Validators::ExpirationDateValidator``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from .clock import parse_iso
from .state import EmulatorState

INTERVALS = ("weekly", "monthly", "quarterly", "yearly", "semiannual")


_METADATA_LIMITS = {"max_keys": 5, "max_key_length": 20, "max_value_length": 100}


def _valid_decimal(value: Any) -> bool:
    """``Validators::DecimalAmountService#valid_decimal?``: a string BigDecimal parses."""
    if not isinstance(value, str):
        return False
    try:
        return Decimal(value.strip()).is_finite()
    except InvalidOperation:
        return False


def present(value: Any) -> bool:
    return value not in (None, False) and not (isinstance(value, str) and not value.strip())


def valid_metadata(metadata: Any) -> bool:
    """``Validators::MetadataValidator#valid?``: up to 5 ``{key, value}`` pairs, keys up to 20
    characters, values up to 100, no nesting."""
    items = [] if metadata is None else metadata
    if not isinstance(items, list):
        return False
    if len(items) > _METADATA_LIMITS["max_keys"]:
        return False
    for item in items:
        if not isinstance(item, dict) or sorted(item) != ["key", "value"]:
            return False
        key, value = item["key"], item["value"]
        if not present(key) or not present(value) or isinstance(value, dict | list):
            return False
        if len(str(key)) > _METADATA_LIMITS["max_key_length"]:
            return False
        if isinstance(value, str) and len(value) > _METADATA_LIMITS["max_value_length"]:
            return False
    return True


def valid_expiration_at(state: EmulatorState, value: Any) -> bool:
    """``Validators::ExpirationDateValidator``: blank, or a parseable date in the future."""
    if not present(value):
        return True
    try:
        return isinstance(value, str) and parse_iso(value) > state.now()
    except ValueError:
        return False


def valid_rule(state: EmulatorState, params: Any) -> bool:
    """``Wallets::RecurringTransactionRules::ValidateService#call``."""
    if not isinstance(params, dict):
        return False
    trigger = str(params.get("trigger") or "")
    method = params.get("method")
    method = None if method is None else str(method)
    interval_ok = trigger == "interval" and params.get("interval") in INTERVALS
    threshold_ok = trigger == "threshold" and _valid_decimal(params.get("threshold_credits"))
    if not (interval_ok or threshold_ok):
        return False
    if method == "target" and not _valid_decimal(params.get("target_ongoing_balance")):
        return False
    if method == "target" and trigger == "threshold" and not _target_above_threshold(params):
        return False
    paid, granted = params.get("paid_credits"), params.get("granted_credits")
    if (_truthy(paid) or _truthy(granted)) and not (
        (_truthy(paid) and _valid_decimal(paid)) or (_truthy(granted) and _valid_decimal(granted))
    ):
        return False
    if not valid_metadata(params.get("transaction_metadata")):
        return False
    if not valid_expiration_at(state, params.get("expiration_at")):
        return False
    return params.get("grants_target_top_up") is None or method == "target"


def _target_above_threshold(params: dict[str, Any]) -> bool:
    target, threshold = params.get("target_ongoing_balance"), params.get("threshold_credits")
    if target is None or threshold is None:
        return True
    return Decimal(str(target)) >= Decimal(str(threshold))


def _truthy(value: Any) -> bool:
    """Ruby truthiness: only ``nil`` and ``false`` are false."""
    return value is not None and value is not False


def rules_error(state: EmulatorState, rules: Any) -> str | None:
    """``Wallets::ValidateRecurringTransactionRulesService``: at most one rule per request,
    and that one valid; the error code on ``recurring_transaction_rules``, or None."""
    if not isinstance(rules, list):
        return "invalid_recurring_rule"
    if len(rules) > 1:
        return "invalid_number_of_recurring_rules"
    if rules and not valid_rule(state, rules[0]):
        return "invalid_recurring_rule"
    return None
