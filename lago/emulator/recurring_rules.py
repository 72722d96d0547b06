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
"""

from __future__ import annotations

import calendar
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from .clock import iso, new_id, parse_iso
from .state import EmulatorState, Record

INTERVALS = ("weekly", "monthly", "quarterly", "yearly", "semiannual")
_PLACES = Decimal("0.00001")
_METADATA_LIMITS = {"max_keys": 5, "max_key_length": 20, "max_value_length": 100}


# --- validation -------------------------------------------------------------------------


def _valid_decimal(value: Any) -> bool:
    """``Validators::DecimalAmountService#valid_decimal?``: a string BigDecimal parses."""
    if not isinstance(value, str):
        return False
    try:
        return Decimal(value.strip()).is_finite()
    except InvalidOperation:
        return False


def _present(value: Any) -> bool:
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
        if not _present(key) or not _present(value) or isinstance(value, dict | list):
            return False
        if len(str(key)) > _METADATA_LIMITS["max_key_length"]:
            return False
        if isinstance(value, str) and len(value) > _METADATA_LIMITS["max_value_length"]:
            return False
    return True


def valid_expiration_at(state: EmulatorState, value: Any) -> bool:
    """``Validators::ExpirationDateValidator``: blank, or a parseable date in the future."""
    if not _present(value):
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


# --- storage ----------------------------------------------------------------------------


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
    if not _present(value):
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
    return value if _present(value) else None


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
                if r["lago_id"] == payload.get("lago_id") and _active_scope(state, r)
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


def _active_scope(state: EmulatorState, rule: Record) -> bool:
    """The ``active`` scope and ``currently_active?``: active and not past ``expiration_at``."""
    expires = rule["expiration_at"]
    return rule["status"] == "active" and (expires is None or parse_iso(expires) > state.now())


def serialize_rules(state: EmulatorState, wallet: Record) -> list[Record]:
    """The wallet's currently active rules, as ``V1::WalletSerializer`` includes them."""
    return [
        serialize_rule(rule)
        for rule in wallet.get("recurring_transaction_rules") or []
        if _active_scope(state, rule)
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


# --- the clock ----------------------------------------------------------------------------


def terminate_expired(state: EmulatorState) -> list[str]:
    """``Clock::TerminateRecurringTransactionRulesJob`` (hourly): active rules past their
    ``expiration_at`` are terminated. Returns their ids."""
    now = state.now()
    ended = []
    for wallet in state.wallets.values():
        for rule in wallet.get("recurring_transaction_rules") or []:
            expires = rule["expiration_at"]
            if rule["status"] == "active" and expires and parse_iso(expires) <= now:
                terminate(state, rule)
                ended.append(rule["lago_id"])
    return ended


def _zone(state: EmulatorState, wallet: Record) -> ZoneInfo:
    customer = state.customers.get(wallet["external_customer_id"]) or {}
    return ZoneInfo(customer.get("applicable_timezone") or "UTC")


def _last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _billing_day(started: date, today: date) -> bool:
    """Today is the anniversary day of the month (every day up to the 31st on a month's last)."""
    if today.day == _last_day(today):
        return started.day >= today.day
    return started.day == today.day


def _due_today(interval: str, started: date, today: date) -> bool:
    """``CreateIntervalWalletTransactionsService``'s ``*_anniversary`` conditions."""
    if interval == "weekly":
        return started.isoweekday() == today.isoweekday()
    if interval == "monthly":
        return _billing_day(started, today)
    if interval in ("quarterly", "semiannual"):
        every = 3 if interval == "quarterly" else 6
        if started.month % every == 0:
            month_ok = today.month % every == 0
        else:
            month_ok = any((started.month + k) % 12 == today.month for k in range(0, 12, every))
        return month_ok and _billing_day(started, today)
    # yearly: 29 February falls on the 28th in a year without one.
    if started.month != today.month:
        return False
    if today.month == 2 and today.day == 28 and _last_day(today) == 28:
        return started.day in (28, 29)
    return started.day == today.day


def _applied_today(state: EmulatorState, wallet: Record, today: date, zone: ZoneInfo) -> bool:
    return any(
        t["lago_wallet_id"] == wallet["lago_id"]
        and t.get("source") == "interval"
        and t["transaction_type"] == "inbound"
        and parse_iso(t["created_at"]).astimezone(zone).date() == today
        for t in state.wallet_transactions.values()
    )


def _ongoing_credits(state: EmulatorState, wallet: Record) -> Decimal:
    from .wallets import serialize

    return Decimal(serialize(state, wallet)["credits_ongoing_balance"])


def _target_gap(rule: Record, ongoing: Decimal) -> Decimal:
    target = Decimal(rule["target_ongoing_balance"] or 0)
    return Decimal(0) if ongoing >= target else target - ongoing


def paid_credits_of(rule: Record, ongoing: Decimal, pending: Decimal = Decimal(0)) -> Decimal:
    """``RecurringTransactionRule#compute_paid_credits`` (no paid top-up limits here)."""
    paid = Decimal(rule["paid_credits"])
    if rule["method"] == "target":
        return Decimal(0) if rule["grants_target_top_up"] else _target_gap(rule, ongoing)
    if rule["trigger"] == "threshold":
        if paid == 0:
            return paid
        gap = Decimal(rule["threshold_credits"]) - ongoing - Decimal(rule["granted_credits"])
        gap -= pending
        return paid if gap < paid else paid * ((gap / paid).to_integral_value("ROUND_FLOOR") + 1)
    return paid


def granted_credits_of(rule: Record, ongoing: Decimal) -> Decimal:
    """``RecurringTransactionRule#compute_granted_credits``."""
    if rule["method"] == "target":
        return _target_gap(rule, ongoing) if rule["grants_target_top_up"] else Decimal(0)
    return Decimal(rule["granted_credits"])


def _apply(state: EmulatorState, wallet: Record, rule: Record, paid: Decimal,
           granted: Decimal, source: str) -> list[Record]:  # fmt: skip
    """``WalletTransactions::CreateJob`` with the rule's parameters, run at once."""
    from .wallets import top_up

    params = {"paid_credits": str(paid), "granted_credits": str(granted),
              "name": rule["transaction_name"]}  # fmt: skip
    given = {
        "source": source,
        "metadata": rule["transaction_metadata"] or [],
        "priority": 50,
        "invoice_requires_successful_payment": rule["invoice_requires_successful_payment"],
        "purchase_order_number": (
            rule["purchase_order_number"] or wallet.get("purchase_order_number")
        ),
    }
    return top_up(state, wallet, params, given)


def create_interval_transactions(state: EmulatorState) -> list[Record]:
    """``Clock::CreateIntervalWalletTransactionsJob`` (hourly, at :55): each active interval
    rule of an active wallet whose anniversary (from ``started_at``, else the wallet's
    creation, in the customer's time zone) is today tops the wallet up, unless the wallet was
    created today or already had an interval top-up today. Returns the transactions made."""
    now = state.now()
    made: list[Record] = []
    for wallet in list(state.wallets.values()):
        if wallet["status"] != "active":
            continue
        zone = _zone(state, wallet)
        today = now.astimezone(zone).date()
        if parse_iso(wallet["created_at"]).astimezone(zone).date() == today:
            continue
        if _applied_today(state, wallet, today, zone):
            continue
        for rule in list(wallet.get("recurring_transaction_rules") or []):
            if rule["trigger"] != "interval" or rule["interval"] not in INTERVALS:
                continue
            if not _active_scope(state, rule):
                continue
            start = parse_iso(rule["started_at"] or wallet["created_at"])
            anniversary = start.astimezone(zone).date()
            if start > now or not _due_today(rule["interval"], anniversary, today):
                continue
            ongoing = _ongoing_credits(state, wallet)
            paid, granted = paid_credits_of(rule, ongoing), granted_credits_of(rule, ongoing)
            if rule["method"] == "target" and paid == 0 and granted == 0:
                continue
            made += _apply(state, wallet, rule, paid, granted, "interval")
    return made


def threshold_top_ups(state: EmulatorState) -> list[Record]:
    """``Wallets::ThresholdTopUpService`` for every active wallet (Lago runs it when it
    refreshes a wallet's ongoing balance): a wallet at or below its active threshold rule's
    ``threshold_credits``, pending top-ups included, is topped up. Returns the transactions."""
    made: list[Record] = []
    for wallet in list(state.wallets.values()):
        if wallet["status"] != "active":
            continue
        rule = next(
            (
                r
                for r in wallet.get("recurring_transaction_rules") or []
                if r["trigger"] == "threshold" and _active_scope(state, r)
            ),
            None,
        )
        if rule is None:
            continue
        ongoing = _ongoing_credits(state, wallet)
        threshold = Decimal(rule["threshold_credits"])
        pending = sum(
            (
                Decimal(t["credit_amount"])
                for t in state.wallet_transactions.values()
                if t["lago_wallet_id"] == wallet["lago_id"] and t["status"] == "pending"
            ),
            Decimal(0),
        )
        if ongoing > threshold or pending + ongoing > threshold:
            continue
        paid = paid_credits_of(rule, ongoing, pending)
        made += _apply(state, wallet, rule, paid, granted_credits_of(rule, ongoing), "threshold")
    return made


def run_clock(state: EmulatorState) -> dict[str, Any]:
    """The rules' clock jobs at ``state.now()``: expired rules terminated (Lago at :50),
    interval top-ups (at :55), then threshold top-ups (Lago's wallet refresh)."""
    terminated = terminate_expired(state)
    interval = create_interval_transactions(state)
    return {
        "terminated_rule_ids": terminated,
        "wallet_transactions": interval + threshold_top_ups(state),
    }
