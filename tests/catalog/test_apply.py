from __future__ import annotations

import copy

import httpx
import pytest

from gateway.catalog.exporter import catalog_from_lago, render
from gateway.catalog.loader import CatalogError, parse_catalog
from gateway.catalog.schemas import Catalog
from gateway.catalog.service import ApplyFailed, apply_catalog, fetch_lago_catalog
from gateway.integrations.lago.client import LagoClient
from gateway.usage.parsing import MetricRule, metric_rules
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from tests.catalog.conftest import LAGO_KEY


async def _apply(lago: LagoClient, catalog: Catalog, **options: bool) -> tuple[int, list[str]]:
    lines: list[str] = []
    result = await apply_catalog(lago, catalog, say=lines.append, **options)
    return len(result.applied), lines


async def test_apply_on_an_empty_lago_creates_every_metric_plan_and_coupon(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog
) -> None:
    applied, lines = await _apply(lago, catalog)

    assert applied == 21
    assert set(emulator.billable_metrics) == {"photo_generation", "video_generation"}
    assert set(emulator.plans) == {
        "free_monthly",
        "basic_monthly",
        "basic_yearly",
        "premium_monthly",
        "premium_yearly",
    }
    assert set(emulator.coupons) == {
        "WELCOME20",
        "FIVEOFF",
        "PREMIUM3X10",
        "STUDIO2OFF",
        "LAUNCH15",
    }
    photo_id = emulator.billable_metrics["photo_generation"]["lago_id"]
    free = emulator.plans["free_monthly"]
    assert free["charges"][0]["lago_billable_metric_id"] == photo_id
    assert free["charges"][0]["properties"]["graduated_ranges"][0]["to_value"] == 10
    assert emulator.plans["basic_yearly"]["amount_cents"] == 9990
    assert emulator.coupons["PREMIUM3X10"]["plan_codes"] == ["premium_monthly"]
    assert "+ plan premium_yearly" in lines
    assert "[1/21] create billable_metric photo_generation" in lines
    assert "[7/21] create plan premium_yearly" in lines
    assert lines[-1] == "applied 21 change(s)"


async def test_second_apply_changes_nothing_and_says_so(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog
) -> None:
    await _apply(lago, catalog)
    before = copy.deepcopy((emulator.billable_metrics, emulator.plans, emulator.coupons))

    applied, lines = await _apply(lago, catalog)

    assert applied == 0
    assert lines[-1] == "nothing to do: Lago already matches the catalog"
    unchanged = "2 billable_metric(s), 5 plan(s), 5 coupon(s), 5 feature(s), 5 plans' entitlements"
    assert f"= unchanged: {unchanged}" in lines
    assert (emulator.billable_metrics, emulator.plans, emulator.coupons) == before


async def test_an_edited_price_updates_exactly_that_plan(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog, catalog_text: str
) -> None:
    await _apply(lago, catalog)
    before = copy.deepcopy(emulator.plans)
    edited = catalog_text.replace("amount_cents: 999\n", "amount_cents: 1099\n", 1)

    applied, lines = await _apply(lago, parse_catalog(edited))

    assert applied == 1
    assert "~ plan basic_monthly: amount_cents 999 → 1099" in lines
    assert "[1/1] update plan basic_monthly" in lines
    assert emulator.plans["basic_monthly"]["amount_cents"] == 1099
    assert emulator.plans["basic_monthly"]["charges"] == before["basic_monthly"]["charges"]
    for code, plan in emulator.plans.items():
        if code != "basic_monthly":
            assert plan == before[code]


async def test_an_edited_charge_is_updated_in_place_and_shown_field_by_field(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog, catalog_text: str
) -> None:
    await _apply(lago, catalog)
    charge_ids = [c["lago_id"] for c in emulator.plans["free_monthly"]["charges"]]
    edited = catalog_text.replace('per_unit_amount: "0.25"', 'per_unit_amount: "0.30"', 1)

    applied, lines = await _apply(lago, parse_catalog(edited))

    assert applied == 1
    expected = (
        "~ plan free_monthly: charges[photos].properties.graduated_ranges[1].per_unit_amount "
        '"0.25" → "0.30"'
    )
    assert expected in lines
    charges = emulator.plans["free_monthly"]["charges"]
    assert [c["lago_id"] for c in charges] == charge_ids
    assert charges[0]["properties"]["graduated_ranges"][1]["per_unit_amount"] == "0.30"


async def test_dry_run_prints_the_diff_and_changes_nothing(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog
) -> None:
    applied, lines = await _apply(lago, catalog, dry_run=True)

    assert applied == 0
    assert "+ billable_metric video_generation" in lines
    assert lines[-1] == "dry run: 21 change(s) planned, nothing applied"
    assert not emulator.plans and not emulator.billable_metrics


async def test_what_only_lago_has_is_reported_and_left_alone(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog
) -> None:
    await lago.call(
        "POST",
        "/coupons",
        json={
            "coupon": {
                "name": "Old",
                "code": "OLD",
                "coupon_type": "percentage",
                "percentage_rate": "5",
                "frequency": "once",
                "expiration": "no_expiration",
            }
        },
    )

    _, lines = await _apply(lago, catalog)

    assert "? coupon OLD: in Lago, not in the file (left alone)" in lines
    assert "OLD" in emulator.coupons


async def test_numbers_written_differently_are_not_a_change(
    lago: LagoClient, catalog: Catalog, catalog_text: str
) -> None:
    await _apply(lago, catalog)
    rewritten = catalog_text.replace('properties: {amount: "0.15"}', "properties: {amount: 0.150}")

    applied, lines = await _apply(lago, parse_catalog(rewritten))

    assert applied == 0
    assert lines[-1] == "nothing to do: Lago already matches the catalog"


async def test_export_then_apply_is_a_no_op(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog
) -> None:
    await _apply(lago, catalog)

    text = render(catalog_from_lago(await fetch_lago_catalog(lago), catalog), "the emulator")
    exported = parse_catalog(text, "exported.yaml")
    applied, lines = await _apply(lago, exported)

    assert applied == 0
    assert lines[-1] == "nothing to do: Lago already matches the catalog"
    assert {p.code for p in exported.plans} == {p.code for p in catalog.plans}
    assert exported.token_packs == catalog.token_packs
    assert exported.plan("free_monthly").allowances == catalog.plan("free_monthly").allowances  # type: ignore[union-attr]


async def test_export_of_lago_alone_applies_cleanly_to_an_empty_lago(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog
) -> None:
    await _apply(lago, catalog)
    text = render(catalog_from_lago(await fetch_lago_catalog(lago)), "the emulator")
    emulator.reset()

    applied, _ = await _apply(lago, parse_catalog(text))

    assert applied == 21
    assert emulator.plans["premium_yearly"]["amount_cents"] == 29990


class RefusingTransport(httpx.AsyncBaseTransport):
    """Lago as the emulator answers it, except one path that Lago refuses with a 422."""

    def __init__(self, inner: httpx.AsyncBaseTransport, method: str, path: str) -> None:
        self.inner, self.method, self.path = inner, method, path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == self.method and request.url.path == self.path:
            body = {
                "status": 422,
                "error": "Unprocessable Entity",
                "code": "validation_errors",
                "error_details": {"amount_cents": ["value_is_invalid"]},
            }
            return httpx.Response(422, json=body)
        return await self.inner.handle_async_request(request)


async def test_a_lago_refusal_stops_the_run_and_says_what_went_through(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog, catalog_text: str
) -> None:
    await _apply(lago, catalog)
    edited = catalog_text.replace("amount_cents: 999\n", "amount_cents: 1099\n", 1).replace(
        "amount_cents: 2999\n", "amount_cents: 3499\n", 1
    )
    inner = httpx.ASGITransport(app=create_emulator(emulator, api_key=LAGO_KEY))
    transport = RefusingTransport(inner, "PUT", "/api/v1/plans/premium_monthly")
    refusing = LagoClient("http://lago.test", LAGO_KEY, transport=transport)

    with pytest.raises(ApplyFailed) as failed:
        await _apply(refusing, parse_catalog(edited))
    await refusing.aclose()

    assert failed.value.change.title == "update plan premium_monthly"
    assert [done.change.code for done in failed.value.applied] == ["basic_monthly"]
    assert emulator.plans["basic_monthly"]["amount_cents"] == 1099
    assert emulator.plans["premium_monthly"]["amount_cents"] == 2999
    applied, _ = await _apply(lago, parse_catalog(edited))
    assert applied == 1


class RecordingTransport(httpx.AsyncBaseTransport):
    """Lago as the emulator answers it, every request body kept."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(await request.aread())
        return await self.inner.handle_async_request(request)


async def test_allow_negative_stays_in_the_gateway_and_is_never_sent_to_lago(
    lago: LagoClient, emulator: EmulatorState, catalog_text: str
) -> None:
    text = catalog_text.replace(
        "    field_name: seconds\n", "    field_name: seconds\n    allow_negative: true\n", 1
    )
    catalog = parse_catalog(text)
    assert metric_rules(catalog)["video_generation"] == MetricRule("seconds", True, True)
    recording = RecordingTransport(
        httpx.ASGITransport(app=create_emulator(emulator, api_key=LAGO_KEY, validate=True))
    )
    watched = LagoClient("http://lago.test", LAGO_KEY, transport=recording)

    applied, _ = await _apply(watched, catalog)
    again, lines = await _apply(watched, catalog)
    await watched.aclose()

    assert applied == 21 and again == 0, lines
    assert recording.bodies and not any(b"allow_negative" in body for body in recording.bodies)
    assert "allow_negative" not in emulator.billable_metrics["video_generation"]
    exported = catalog_from_lago(await fetch_lago_catalog(lago), catalog)
    video = next(m for m in exported["billable_metrics"] if m["code"] == "video_generation")
    assert video["allow_negative"] is True
    assert (
        parse_catalog(render(exported, "the emulator")).billable_metrics == catalog.billable_metrics
    )


def test_allow_negative_is_refused_on_a_metric_that_adds_no_numbers(catalog_text: str) -> None:
    text = catalog_text.replace(
        "    aggregation_type: count_agg\n",
        "    aggregation_type: count_agg\n    allow_negative: true\n",
        1,
    )
    with pytest.raises(CatalogError, match="allow_negative has no meaning with count_agg"):
        parse_catalog(text)
