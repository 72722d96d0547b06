from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.catalog.loader import CatalogError, parse_catalog
from gateway.catalog.schemas import Catalog

SOURCE = "lago/catalog.yaml"


def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1


def _refused(text: str) -> list[str]:
    with pytest.raises(CatalogError) as refused:
        parse_catalog(text, SOURCE)
    return str(refused.value).splitlines()


def test_the_shipped_catalog_is_valid_and_prices_packs_exactly(catalog: Catalog) -> None:
    wallet = catalog.token_wallet
    assert wallet is not None
    medium = catalog.pack("medium")
    assert medium is not None
    assert medium.paid_credits(wallet) * Decimal(wallet.rate_amount) == Decimal("9.99")
    assert medium.paid_credits(wallet) + medium.granted_credits(wallet) == 275
    for pack in catalog.token_packs:
        assert pack.paid_credits(wallet) * Decimal(wallet.rate_amount) * 100 == pack.price_cents
    assert catalog.token_costs["photo"].tokens == 5
    assert catalog.token_costs["video"].tokens == 15


def test_a_bad_value_is_refused_with_its_line_and_the_choices(catalog_text: str) -> None:
    broken = catalog_text.replace("interval: yearly", "interval: yearlyy", 1)

    lines = _refused(broken)

    line = _line_of(broken, "interval: yearlyy")
    assert lines == [
        f"{SOURCE}:{line}: plans[2].interval: must be one of "
        "weekly, monthly, quarterly, semiannual, yearly"
    ]


def test_a_missing_field_names_the_field_at_its_parent_line(catalog_text: str) -> None:
    broken = catalog_text.replace("    name: Basic\n", "", 1)

    lines = _refused(broken)

    assert lines == [
        f"{SOURCE}:{_line_of(broken, '- code: basic_monthly')}: plans[1].name: is required"
    ]


def test_an_unknown_field_is_refused(catalog_text: str) -> None:
    broken = catalog_text.replace(
        "    field_name: seconds\n", "    field_name: seconds\n    feild: x\n"
    )

    lines = _refused(broken)

    assert lines == [
        f"{SOURCE}:{_line_of(broken, 'feild: x')}: billable_metrics[1].feild: unknown field"
    ]


def test_a_charge_on_an_unknown_metric_is_refused_with_its_line(catalog_text: str) -> None:
    broken = catalog_text.replace(
        "billable_metric_code: video_generation", "billable_metric_code: audio_generation", 1
    )

    lines = _refused(broken)

    line = _line_of(broken, "audio_generation")
    assert lines == [
        f"{SOURCE}:{line}: plans[0].charges[1].billable_metric_code: "
        "unknown billable metric 'audio_generation'"
    ]


def test_an_allowance_that_contradicts_its_charge_is_refused(catalog_text: str) -> None:
    broken = catalog_text.replace(
        "{included: 10, beyond: tokens}", "{included: 20, beyond: tokens}"
    )

    lines = _refused(broken)

    assert lines == [
        f"{SOURCE}:{_line_of(broken, 'included: 20')}: "
        "plans[0].allowances.photo_generation.included: the plan's charge includes 10"
    ]


def test_broken_ranges_and_yaml_and_duplicates_are_refused() -> None:
    ranges = """
billable_metrics:
  - {code: m, name: M, aggregation_type: count_agg}
plans:
  - code: p
    name: P
    interval: monthly
    amount_cents: 0
    amount_currency: USD
    charges:
      - billable_metric_code: m
        charge_model: graduated
        properties:
          graduated_ranges:
            - {from_value: 0, to_value: 10, per_unit_amount: "0", flat_amount: "0"}
            - {from_value: 12, to_value: null, per_unit_amount: "1", flat_amount: "0"}
"""
    assert _refused(ranges) == [
        f"{SOURCE}:11: plans[0].charges[0]: properties.graduated_ranges[1].from_value must be 11"
    ]
    assert _refused("plans:\n  - code: x\n   name: y\n")[0].startswith(f"{SOURCE}:3: invalid YAML")
    assert _refused("plans: []\nplans: []\n") == [f"{SOURCE}:2: plans: duplicate key"]


def test_a_pack_priced_above_its_tokens_is_refused(catalog_text: str) -> None:
    broken = catalog_text.replace(
        "tokens: 100, bonus_tokens: 0, price_cents: 499",
        "tokens: 90, bonus_tokens: 0, price_cents: 499",
    )

    lines = _refused(broken)

    assert lines == [
        f"{SOURCE}:{_line_of(broken, 'code: small')}: token_packs[0].price_cents: "
        "costs more than its 90 tokens are worth at rate_amount 0.05"
    ]
