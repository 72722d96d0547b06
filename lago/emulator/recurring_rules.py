"""Wallets' recurring transaction rules: stored, validated and serialized as Lago does, and
applied by the clock jobs a test (or ``POST /_emulator/clock/recurring_transaction_rules``)
runs at the emulator's ``now``.

Copied from lago-api: ``app/models/recurring_transaction_rule.rb``,
``app/services/wallets/recurring_transaction_rules/{validate,create,update,terminate}_service.rb``,
``app/services/wallets/validate_recurring_transaction_rules_service.rb``,
``app/serializers/v1/wallets/recurring_transaction_rule_serializer.rb``,
``app/services/wallets/create_interval_wallet_transactions_service.rb`` (hourly
``Clock::CreateIntervalWalletTransactionsJob``), ``Clock::TerminateRecurringTransactionRulesJob``
and ``app/services/wallets/threshold_top_up_service.rb``.

The code is in ``recurring_rule_validation``, ``recurring_rule_storage`` and
``recurring_rule_clock``; this module re-exports their public names, which the wallet
modules, the control routes and the tests import from here.
"""

from __future__ import annotations

from .recurring_rule_clock import (
    create_interval_transactions,
    granted_credits_of,
    paid_credits_of,
    run_clock,
    terminate_expired,
    threshold_top_ups,
)
from .recurring_rule_storage import (
    create_with_wallet,
    serialize_rule,
    serialize_rules,
    terminate,
    update_rules,
)
from .recurring_rule_validation import (
    INTERVALS,
    rules_error,
    valid_expiration_at,
    valid_metadata,
    valid_rule,
)

__all__ = [
    "INTERVALS",
    "create_interval_transactions",
    "create_with_wallet",
    "granted_credits_of",
    "paid_credits_of",
    "rules_error",
    "run_clock",
    "serialize_rule",
    "serialize_rules",
    "terminate",
    "terminate_expired",
    "threshold_top_ups",
    "update_rules",
    "valid_expiration_at",
    "valid_metadata",
    "valid_rule",
]
