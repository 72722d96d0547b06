"""The catalog file as pydantic models: Lago's payloads, plus the sections only the gateway reads.

Metrics, plans and coupons mirror Lago's create payloads field for field, except that a
charge names its metric by ``billable_metric_code`` (Lago wants the metric's ``lago_id``,
which the gateway resolves when it applies the file). ``allow_negative`` on a metric,
``allowances`` and ``alerts`` on a plan and the ``token_wallet``, ``token_costs``,
``token_packs`` and ``alerts`` sections never go to Lago. Nor does a plan's ``token_grant``:
it becomes a recurring transaction rule on each subscriber's token wallet
(``gateway.packs.grants``).

``features`` (``gateway.catalog.features``) mirror Lago's ``POST /features`` body; a plan's
``entitlements`` (feature code → privilege values) go to ``POST /plans/{code}/entitlements``,
not in the plan's body. The shared field types and base model are in
``gateway.catalog.fields``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from gateway.catalog.features import Feature
from gateway.catalog.fields import Code, Currency, DecimalText, Strict

# The aggregations that add or compare the values of field_name (so need numbers).
NUMERIC_AGGREGATIONS = frozenset({"sum_agg", "max_agg", "latest_agg", "weighted_sum_agg"})
INTERVALS = ("weekly", "monthly", "quarterly", "semiannual", "yearly")
CREDIT_PLACES = Decimal("0.00001")


def _unlimited(value: Any) -> Any:
    return None if value == "unlimited" else value


class MetricFilter(Strict):
    key: str
    values: list[str] = Field(min_length=1)


class BillableMetric(Strict):
    """``POST /billable_metrics`` body."""

    code: Code
    name: str
    description: str | None = None
    aggregation_type: Literal[
        "count_agg", "sum_agg", "max_agg", "unique_count_agg", "weighted_sum_agg", "latest_agg"
    ]
    field_name: str | None = None
    recurring: bool = False
    expression: str | None = None
    rounding_function: Literal["ceil", "floor", "round"] | None = None
    rounding_precision: int | None = None
    weighted_interval: Literal["seconds"] | None = None
    filters: list[MetricFilter] = []
    # Gateway-only (never dumped, so never sent to Lago): events may carry a value below
    # zero in field_name (refunds, corrections); by default ingest refuses one.
    allow_negative: bool = Field(default=False, exclude=True)

    @model_validator(mode="after")
    def _field_name_unless_counting(self) -> BillableMetric:
        if self.aggregation_type != "count_agg" and not self.field_name:
            raise ValueError(f"field_name is required with {self.aggregation_type}")
        if self.allow_negative and self.aggregation_type not in NUMERIC_AGGREGATIONS:
            raise ValueError(f"allow_negative has no meaning with {self.aggregation_type}")
        return self


class Band(Strict):
    from_value: int = Field(ge=0)
    to_value: int | None


class Range(Band):
    flat_amount: DecimalText
    per_unit_amount: DecimalText


class PercentageRange(Band):
    rate: DecimalText
    flat_amount: DecimalText


class ChargeProperties(Strict):
    """Lago's charge properties; only the keys the file sets are sent and compared."""

    amount: DecimalText | None = None
    graduated_ranges: list[Range] | None = None
    graduated_percentage_ranges: list[PercentageRange] | None = None
    volume_ranges: list[Range] | None = None
    package_size: int | None = Field(default=None, ge=1)
    free_units: int | None = Field(default=None, ge=0)
    rate: DecimalText | None = None
    fixed_amount: DecimalText | None = None
    free_units_per_events: int | None = None
    free_units_per_total_aggregation: DecimalText | None = None
    per_transaction_max_amount: DecimalText | None = None
    per_transaction_min_amount: DecimalText | None = None
    grouped_by: list[str] | None = None
    pricing_group_keys: list[str] | None = None
    presentation_group_keys: list[dict[str, Any]] | None = None


_REQUIRED_PROPERTIES = {
    "standard": ("amount",),
    "package": ("amount", "package_size"),
    "graduated": ("graduated_ranges",),
    "graduated_percentage": ("graduated_percentage_ranges",),
    "volume": ("volume_ranges",),
    "percentage": ("rate",),
    "dynamic": (),
}


class ChargeFilter(Strict):
    values: dict[str, list[str]]
    properties: ChargeProperties = ChargeProperties()
    invoice_display_name: str | None = None


class Charge(Strict):
    """One usage-based charge of a plan; ``key`` identifies it within the plan."""

    billable_metric_code: Code
    code: Code | None = None
    charge_model: Literal[
        "standard",
        "graduated",
        "graduated_percentage",
        "package",
        "percentage",
        "volume",
        "dynamic",
    ]
    invoice_display_name: str | None = None
    pay_in_advance: bool = False
    invoiceable: bool = True
    prorated: bool = False
    min_amount_cents: int = Field(default=0, ge=0)
    properties: ChargeProperties = ChargeProperties()
    filters: list[ChargeFilter] = []

    @property
    def key(self) -> str:
        return self.code or self.billable_metric_code

    @model_validator(mode="after")
    def _properties_fit_the_model(self) -> Charge:
        for name in _REQUIRED_PROPERTIES[self.charge_model]:
            if getattr(self.properties, name) is None:
                raise ValueError(f"a {self.charge_model} charge needs properties.{name}")
        for name in ("graduated_ranges", "graduated_percentage_ranges", "volume_ranges"):
            ranges = getattr(self.properties, name)
            if ranges is not None:
                _check_ranges(name, ranges)
        return self


def _check_ranges(name: str, ranges: Sequence[Band]) -> None:
    expected = 0
    for index, band in enumerate(ranges):
        if band.from_value != expected:
            raise ValueError(f"properties.{name}[{index}].from_value must be {expected}")
        last = index == len(ranges) - 1
        if last != (band.to_value is None):
            raise ValueError(f"properties.{name}: only the last range has to_value null")
        if band.to_value is not None:
            if band.to_value <= band.from_value:
                raise ValueError(f"properties.{name}[{index}].to_value must exceed from_value")
            expected = band.to_value + 1
    if not ranges:
        raise ValueError(f"properties.{name} needs at least one range")


class Allowance(Strict):
    """Gateway-only: what the plan includes per period, and what happens beyond it."""

    included: Annotated[int | None, BeforeValidator(_unlimited)] = Field(ge=0)
    # tokens: paid from the token wallet; invoice: billed in arrears; blocked: not allowed.
    beyond: Literal["tokens", "invoice", "blocked"] = "tokens"


def _empty_if_none(value: Any) -> Any:
    return {} if value is None else value


def _distinct(values: list[int]) -> list[int]:
    if len(values) != len(set(values)):
        raise ValueError("thresholds must be distinct")
    return sorted(values)


# A percentage of a plan's included usage (100: all of it; above 100: beyond it).
UsagePercents = Annotated[list[Annotated[int, Field(ge=1, le=1000)]], AfterValidator(_distinct)]


class PlanAlerts(Strict):
    """Gateway-only: a plan's own usage alert thresholds, replacing the catalog's
    ``alerts.usage_percent`` for this plan (``usage_percent``: every metric; ``metrics``: one
    metric; ``[]`` turns them off)."""

    usage_percent: UsagePercents | None = None
    metrics: dict[Code, UsagePercents] = {}


class Alerts(Strict):
    """Gateway-only: when the gateway raises ``usage.threshold_reached`` (a subscription's
    usage of a metric reaches these percentages of what its plan includes, once per billing
    period) and ``tokens.low`` (a customer's tokens available fall below these numbers)."""

    usage_percent: UsagePercents = []
    tokens_below: Annotated[list[Annotated[int, Field(ge=1)]], AfterValidator(_distinct)] = []

    def usage_thresholds(self, plan: Plan | None, metric: str) -> list[int]:
        """The percentages that apply to ``metric`` on ``plan``."""
        own = plan.alerts if plan is not None else None
        if own is not None:
            if metric in own.metrics:
                return own.metrics[metric]
            if own.usage_percent is not None:
                return own.usage_percent
        return self.usage_percent


# A privilege's value: Lago's select holds one option, so "which models" is one feature each.
PrivilegeValue = StrictInt | StrictBool | StrictStr
PrivilegeValues = Annotated[dict[Code, PrivilegeValue], BeforeValidator(_empty_if_none)]


class TokenGrant(Strict):
    """Gateway-only: tokens the plan's subscribers are granted free every ``interval`` (a
    recurring transaction rule of Lago's on the customer's token wallet; Lago keeps one rule
    per wallet, so a plan grants one amount at one interval)."""

    tokens: int = Field(gt=0)
    # Lago's RecurringTransactionRule::INTERVALS.
    interval: Literal["weekly", "monthly", "quarterly", "semiannual", "yearly"]
    # The name of the wallet transactions the grant makes (Lago's ``transaction_name``).
    name: str | None = Field(default=None, min_length=1, max_length=255)


class Plan(Strict):
    """``POST /plans`` body (charges by metric code), plus gateway-only ``allowances`` and the
    plan's ``entitlements`` (sent to ``/plans/{code}/entitlements``, never in this body)."""

    code: Code
    name: str
    invoice_display_name: str | None = None
    description: str | None = None
    interval: Literal["weekly", "monthly", "quarterly", "semiannual", "yearly"]
    amount_cents: int = Field(ge=0)
    amount_currency: Currency
    pay_in_advance: bool = False
    trial_period: float | None = Field(default=None, ge=0)
    bill_charges_monthly: bool | None = None
    charges: list[Charge] = []
    allowances: dict[str, Allowance] = {}
    # Feature code → privilege values (``{}`` for a feature without privileges). Absent: the
    # plan's entitlements in Lago are left as they are.
    entitlements: dict[Code, PrivilegeValues] = Field(default={}, exclude=True)
    # Gateway-only: this plan's usage alert thresholds (else the catalog's ``alerts``).
    alerts: PlanAlerts | None = Field(default=None, exclude=True)
    # Gateway-only: tokens granted to each subscriber every interval (needs ``token_wallet``).
    token_grant: TokenGrant | None = Field(default=None, exclude=True)


class AppliesTo(Strict):
    plan_codes: list[str] = []
    billable_metric_codes: list[str] = []


class Coupon(Strict):
    """``POST /coupons`` body."""

    code: Code
    name: str
    description: str | None = None
    coupon_type: Literal["fixed_amount", "percentage"]
    amount_cents: int | None = Field(default=None, gt=0)
    amount_currency: Currency | None = None
    percentage_rate: DecimalText | None = None
    frequency: Literal["once", "recurring", "forever"]
    frequency_duration: int | None = Field(default=None, ge=1)
    reusable: bool = True
    expiration: Literal["no_expiration", "time_limit"] = "no_expiration"
    expiration_at: AwareDatetime | None = None
    applies_to: AppliesTo | None = None

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> Coupon:
        if self.coupon_type == "fixed_amount" and (
            not self.amount_cents or not self.amount_currency
        ):
            raise ValueError("a fixed_amount coupon needs amount_cents and amount_currency")
        if self.coupon_type == "percentage" and self.percentage_rate is None:
            raise ValueError("a percentage coupon needs percentage_rate")
        if self.frequency == "recurring" and self.frequency_duration is None:
            raise ValueError("a recurring coupon needs frequency_duration")
        if self.expiration == "time_limit" and self.expiration_at is None:
            raise ValueError("expiration time_limit needs expiration_at")
        return self


class TokenWallet(Strict):
    """Gateway-only: the Lago wallet token packs top up (1 credit = 1 token)."""

    code: Code = "tokens"
    name: str = "Tokens"
    currency: Currency
    # What one token is worth in ``currency``: Lago invoices paid credits at this rate,
    # and a wallet pays usage invoices at it.
    rate_amount: DecimalText

    @model_validator(mode="after")
    def _positive_rate(self) -> TokenWallet:
        if Decimal(self.rate_amount) <= 0:
            raise ValueError("rate_amount must be above zero")
        return self


class TokenCost(Strict):
    """Gateway-only: tokens one item costs, an item being ``per_units`` of ``metric``."""

    metric: Code
    tokens: int = Field(gt=0)
    per_units: int = Field(default=1, gt=0)


class TokenPack(Strict):
    """Gateway-only: a pack a customer buys, ``tokens`` + ``bonus_tokens`` for ``price_cents``."""

    code: Code
    name: str
    tokens: int = Field(gt=0)
    bonus_tokens: int = Field(default=0, ge=0)
    price_cents: int = Field(gt=0)

    @property
    def total_tokens(self) -> int:
        return self.tokens + self.bonus_tokens

    def paid_credits(self, wallet: TokenWallet) -> Decimal:
        """Credits Lago invoices: exactly the price at the wallet's rate."""
        return (Decimal(self.price_cents) / 100 / Decimal(wallet.rate_amount)).normalize()

    def granted_credits(self, wallet: TokenWallet) -> Decimal:
        """The rest of the pack, granted free (settled at once, as Lago grants)."""
        return (Decimal(self.total_tokens) - self.paid_credits(wallet)).normalize()


class Catalog(Strict):
    """The whole file."""

    version: Literal[1] = 1
    billable_metrics: list[BillableMetric] = []
    plans: list[Plan] = []
    coupons: list[Coupon] = []
    features: list[Feature] = []
    token_wallet: TokenWallet | None = None
    token_costs: dict[str, TokenCost] = {}
    token_packs: list[TokenPack] = []
    alerts: Alerts = Alerts()

    def plan(self, code: str) -> Plan | None:
        return next((p for p in self.plans if p.code == code), None)

    def token_grant(self, plan_code: str | None) -> TokenGrant | None:
        """The plan's token grant (None for an unknown plan or one without)."""
        plan = self.plan(plan_code) if plan_code else None
        return plan.token_grant if plan else None

    @model_validator(mode="after")
    def _grants_need_the_token_wallet(self) -> Catalog:
        granting = [p.code for p in self.plans if p.token_grant is not None]
        if granting and self.token_wallet is None:
            raise ValueError(f"token_grant needs the token_wallet section (plans: {granting})")
        return self

    def feature(self, code: str) -> Feature | None:
        return next((f for f in self.features if f.code == code), None)

    def pack(self, code: str) -> TokenPack | None:
        return next((p for p in self.token_packs if p.code == code), None)

    @property
    def metric_codes(self) -> set[str]:
        return {m.code for m in self.billable_metrics}
