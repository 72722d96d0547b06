"""Features and plan entitlements in the catalog: applied to Lago (the emulator), exported back,
checked when loaded, and read by the pure functions the hold and balance answers use."""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.catalog.entitlements import (
    Excess,
    Refusal,
    excess,
    features_of,
    overrides_from_lago,
    refusal,
)
from gateway.catalog.exporter import catalog_from_lago, render
from gateway.catalog.loader import CatalogError, parse_catalog
from gateway.catalog.schemas import Catalog
from gateway.catalog.service import apply_catalog, fetch_lago_catalog
from gateway.integrations.lago.client import LagoClient
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from tests.catalog.conftest import LAGO_KEY
from tests.catalog.test_apply import RecordingTransport


async def _apply(lago: LagoClient, catalog: Catalog) -> tuple[int, list[str]]:
    lines: list[str] = []
    result = await apply_catalog(lago, catalog, say=lines.append)
    return len(result.applied), lines


def plan_values(emulator: EmulatorState, plan: str) -> dict[str, dict[str, str]]:
    """A plan's entitlements in the emulator: feature code → privilege code → stored value."""
    features = {f["lago_id"]: f for f in emulator.features.values()}
    plan_id = emulator.plans[plan]["lago_id"]
    found: dict[str, dict[str, str]] = {}
    for entitlement in emulator.entitlements.values():
        if entitlement["plan_id"] == plan_id:
            feature = features[entitlement["feature_id"]]
            names = {p["lago_id"]: p["code"] for p in feature["privileges"]}
            found[feature["code"]] = {
                names[v["privilege_id"]]: v["value"] for v in entitlement["values"]
            }
    return found


async def test_apply_creates_features_and_plan_entitlements_without_gateway_rules(
    emulator: EmulatorState, catalog: Catalog
) -> None:
    recording = RecordingTransport(
        httpx.ASGITransport(app=create_emulator(emulator, api_key=LAGO_KEY, validate=True))
    )
    watched = LagoClient("http://lago.test", LAGO_KEY, transport=recording)

    applied, lines = await _apply(watched, catalog)
    again, second = await _apply(watched, catalog)
    await watched.aclose()

    assert (applied, again) == (21, 0), second
    assert emulator.contract_violations == []
    assert list(emulator.features) == ["video", "hd_photos", "pro_model", "badge", "priority"]
    assert "+ feature video" in lines
    assert "[21/21] update plan_entitlements premium_yearly" in lines
    assert plan_values(emulator, "free_monthly") == {}
    assert plan_values(emulator, "basic_monthly") == {
        "hd_photos": {"max_resolution": "2048"},
        "badge": {"tier": "basic"},
    }
    assert plan_values(emulator, "premium_monthly") == {
        "video": {"max_clip_seconds": "60"},
        "hd_photos": {"max_resolution": "4096"},
        "pro_model": {},
        "badge": {"tier": "premium"},
        "priority": {},
    }
    sent = [orjson.loads(b) for b in recording.bodies if b]
    features = [b["feature"] for b in sent if "feature" in b]
    assert len(features) == 5
    assert not any("metric" in f or "properties" in f for f in features)
    assert not any("entitlements" in b.get("plan", {}) for b in sent)


async def test_an_edited_value_updates_that_plan_and_shows_the_field(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog, catalog_text: str
) -> None:
    await _apply(lago, catalog)
    edited = catalog_text.replace(
        "hd_photos: {max_resolution: 2048}", "hd_photos: {max_resolution: 1024}", 1
    )

    applied, lines = await _apply(lago, parse_catalog(edited))

    assert applied == 1
    assert (
        "~ plan_entitlements basic_monthly: entitlements[hd_photos].max_resolution 2048 → 1024"
        in lines
    )
    assert plan_values(emulator, "basic_monthly")["hd_photos"] == {"max_resolution": "1024"}
    assert plan_values(emulator, "basic_yearly")["hd_photos"] == {"max_resolution": "2048"}


async def test_features_and_privileges_follow_the_file(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog, catalog_text: str
) -> None:
    """A feature taken off a plan goes; a privilege whose type changes is made again and its
    plan values are sent again; a privilege only Lago has is deleted; a new option is added."""
    await _apply(lago, catalog)
    await lago.call(
        "PUT",
        "/features/priority",
        json={"feature": {"privileges": [{"code": "lane", "value_type": "string"}]}},
    )
    edited = (
        catalog_text.replace("      priority: {}\n", "", 1)
        .replace(
            "value_type: integer, limits: seconds}",
            "value_type: string}",
        )
        .replace("video: {max_clip_seconds: 60}", 'video: {max_clip_seconds: "60"}')
        .replace("select_options: [basic, premium]", "select_options: [basic, premium, studio]")
    )

    applied, lines = await _apply(lago, parse_catalog(edited))
    again, _ = await _apply(lago, parse_catalog(edited))

    assert again == 0
    assert "~ feature video: privileges[max_clip_seconds] present → made again" in lines
    assert "~ feature priority: privileges[lane] present → removed" in lines
    assert (
        "~ feature badge: privileges[tier].config.select_options ['basic', 'premium'] → "
        "['basic', 'premium', 'studio']"
    ) in lines
    assert "~ plan_entitlements premium_monthly: entitlements[priority] present → removed" in lines
    assert applied == 3 + 2
    assert "priority" not in plan_values(emulator, "premium_monthly")
    assert "priority" in plan_values(emulator, "premium_yearly")
    video = emulator.features["video"]["privileges"]
    assert [(p["code"], p["value_type"]) for p in video] == [("max_clip_seconds", "string")]
    assert plan_values(emulator, "premium_yearly")["video"] == {"max_clip_seconds": "60"}
    assert [p["code"] for p in emulator.features["priority"]["privileges"]] == []


async def test_export_reads_features_and_entitlements_back(
    lago: LagoClient, emulator: EmulatorState, catalog: Catalog
) -> None:
    await _apply(lago, catalog)
    lago_now = await fetch_lago_catalog(lago)

    with_base = parse_catalog(render(catalog_from_lago(lago_now, catalog), "the emulator"))
    alone = parse_catalog(render(catalog_from_lago(lago_now), "the emulator"))

    assert with_base.features == catalog.features
    assert [f.code for f in alone.features] == [f.code for f in catalog.features]
    assert alone.feature("video").metric is None  # type: ignore[union-attr]
    premium, wanted = alone.plan("premium_monthly"), catalog.plan("premium_monthly")
    assert premium is not None and wanted is not None
    assert premium.entitlements == wanted.entitlements
    assert (await _apply(lago, with_base))[0] == 0
    emulator.reset()
    assert (await _apply(lago, alone))[0] == 21


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            ("hd_photos: {max_resolution: 2048}", "hd: {max_resolution: 2048}"),
            "unknown feature 'hd'",
        ),
        (
            ("hd_photos: {max_resolution: 2048}", "hd_photos: {max_res: 2048}"),
            "hd_photos has no privilege 'max_res'",
        ),
        (
            ("hd_photos: {max_resolution: 2048}", 'hd_photos: {max_resolution: "2048"}'),
            "'2048' is not a integer",
        ),
        (
            ("badge: {tier: basic}", "badge: {tier: gold}"),
            "'gold' is not a select of basic, premium",
        ),
        (
            ("    metric: video_generation\n", "    metric: videos\n"),
            "unknown billable metric 'videos'",
        ),
    ],
)
def test_loading_checks_entitlements_against_features(
    catalog_text: str, edit: tuple[str, str], problem: str
) -> None:
    with pytest.raises(CatalogError) as failed:
        parse_catalog(catalog_text.replace(*edit, 1))

    assert problem in str(failed.value)


def test_a_select_privilege_needs_options(catalog_text: str) -> None:
    text = catalog_text.replace("        config: {select_options: [basic, premium]}\n", "", 1)

    with pytest.raises(CatalogError) as failed:
        parse_catalog(text)

    assert "a select privilege needs config.select_options" in str(failed.value)


def test_only_an_integer_privilege_limits_a_property(catalog_text: str) -> None:
    text = catalog_text.replace(
        "value_type: integer, limits: seconds}", "value_type: string, limits: seconds}", 1
    )

    with pytest.raises(CatalogError) as failed:
        parse_catalog(text)

    assert "only an integer privilege limits a property" in str(failed.value)


def test_limits_stay_in_the_gateway(catalog: Catalog) -> None:
    video = catalog.feature("video")
    assert video is not None
    privilege = video.privilege("max_clip_seconds")
    assert privilege is not None and privilege.limits == "seconds"
    assert "limits" not in privilege.model_dump(mode="json")  # never sent to Lago


# -- refusal and features_of --------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "properties", "overrides", "expected"),
    [
        ("premium_monthly", {"seconds": 61}, None, ("max_clip_seconds", 60, 61.0)),
        ("premium_monthly", {"seconds": "61.5"}, None, ("max_clip_seconds", 60, 61.5)),
        ("premium_monthly", {"seconds": 60}, None, None),
        ("premium_monthly", {}, None, None),
        ("premium_monthly", {"seconds": "long"}, None, None),
        ("premium_monthly", {"seconds": True}, None, None),
        ("premium_monthly", {"seconds": 90}, {"video": {"max_clip_seconds": 120}}, None),
        # An override without values keeps the plan's (Lago's PATCH adds or changes).
        ("premium_monthly", {"seconds": 90}, {"video": {}}, ("max_clip_seconds", 60, 90.0)),
        ("basic_monthly", {"seconds": 90}, None, None),  # not entitled: refusal() answers
        (
            "basic_monthly",
            {"seconds": 16},
            {"video": {"max_clip_seconds": 15}},
            ("max_clip_seconds", 15, 16.0),
        ),
    ],
)
def test_excess_names_the_capped_privilege_an_event_goes_beyond(
    catalog: Catalog,
    plan: str,
    properties: dict[str, object],
    overrides: dict[str, dict[str, int]] | None,
    expected: tuple[str, int, float] | None,
) -> None:
    found = excess(catalog, plan, "video_generation", properties, overrides)

    assert (None if found is None else (found.privilege, found.limit, found.value)) == expected


def test_excess_caps_only_the_events_its_feature_gates(catalog: Catalog) -> None:
    # ``seconds`` on a photo is not a clip: the video feature does not gate photos.
    assert excess(catalog, "premium_monthly", "photo_generation", {"seconds": 999}) is None
    found = excess(catalog, "premium_monthly", "video_generation", {"seconds": 75})
    assert found == Excess("video", "max_clip_seconds", 60, "seconds", 75.0)
    assert found.message == "seconds 75 is above max_clip_seconds 60"


@pytest.mark.parametrize(
    ("plan", "metric", "properties", "expected"),
    [
        ("free_monthly", "photo_generation", {"quality": "sd"}, None),
        ("free_monthly", "photo_generation", {"quality": "hd"}, ("hd_photos", ("quality", "hd"))),
        ("basic_monthly", "photo_generation", {"quality": "hd"}, None),
        ("basic_monthly", "video_generation", {"seconds": 5}, ("video", None)),
        ("basic_monthly", "photo_generation", {"model": "pro"}, ("pro_model", ("model", "pro"))),
        ("premium_yearly", "video_generation", {"seconds": 5, "model": "pro"}, None),
        ("premium_monthly", "photo_generation", {"quality": "hd", "model": "pro"}, None),
        (None, "video_generation", {}, ("video", None)),
        ("a_plan_lago_alone_has", "video_generation", {}, None),
    ],
)
def test_refusal_names_the_feature_the_plan_lacks(
    catalog: Catalog, plan: str | None, metric: str, properties: dict[str, object], expected: object
) -> None:
    found = refusal(catalog, plan, metric, properties)

    assert (None if found is None else (found.feature, found.matched_property)) == expected


def test_refusal_message_and_a_catalog_without_rules(catalog: Catalog) -> None:
    found = refusal(catalog, "basic_monthly", "video_generation", {})

    assert found == Refusal("video", "Video generation", "basic_monthly", "video_generation")
    assert found.message == (
        "video_generation needs Video generation, which plan basic_monthly does not include"
    )
    plain = catalog.model_copy(update={"features": []})
    assert refusal(plain, "free_monthly", "video_generation", {}) is None


def test_overrides_add_change_and_remove_features(catalog: Catalog) -> None:
    extra = {"video": {"max_clip_seconds": 10}, "hd_photos": None}

    assert refusal(catalog, "basic_monthly", "video_generation", {}, extra) is None
    hd = refusal(catalog, "basic_monthly", "photo_generation", {"quality": "hd"}, extra)
    assert hd is not None and hd.feature == "hd_photos"
    assert features_of(catalog, "basic_monthly", extra) == {
        "badge": {"tier": "basic"},
        "video": {"max_clip_seconds": 10},
    }
    changed = features_of(catalog, "premium_monthly", {"video": {"max_clip_seconds": 120}})
    assert changed["video"] == {"max_clip_seconds": 120}
    assert features_of(catalog, None) == {}
    assert features_of(catalog, "free_monthly") == {}


def test_overrides_from_lagos_subscription_entitlements(catalog: Catalog) -> None:
    answered = [
        {"code": "hd_photos", "privileges": [{"code": "max_resolution", "value": 2048}]},
        {"code": "video", "privileges": [{"code": "max_clip_seconds", "value": 15}]},
    ]

    overrides = overrides_from_lago(catalog, "basic_monthly", answered)

    assert overrides == {"badge": None, "video": {"max_clip_seconds": 15}}
    assert refusal(catalog, "basic_monthly", "video_generation", {}, overrides) is None
