"""Features and entitlements through the gateway's Lago surface: reads pass through, a
subscription's overrides and removals are audited writes."""

from __future__ import annotations

from tests.billing.support import BASIC, audit_rows, ok, outcomes, seed_catalog
from tests.conftest import Gateway


async def _seed(gw: Gateway) -> None:
    """The catalog of tests.billing.support, a ``video`` feature on no plan, ``hd_photos``
    on basic, and one subscription to basic."""
    await seed_catalog(gw)
    lago = gw.runtime.lago
    clip = {"code": "max_clip_seconds", "value_type": "integer"}
    resolution = {"code": "max_resolution", "value_type": "integer"}
    await lago.call("POST", "/features", json={"feature": {"code": "video", "privileges": [clip]}})
    await lago.call(
        "POST", "/features", json={"feature": {"code": "hd_photos", "privileges": [resolution]}}
    )
    body = {"entitlements": {"hd_photos": {"max_resolution": 2048}}}
    await lago.call("POST", f"/plans/{BASIC}/entitlements", json=body)
    await lago.call("POST", "/customers", json={"customer": {"external_id": "acme"}})
    subscription = {"external_customer_id": "acme", "plan_code": BASIC, "external_id": "sub-1"}
    await lago.call("POST", "/subscriptions", json={"subscription": subscription})


async def test_features_and_plan_entitlements_are_read_through(gateway: Gateway) -> None:
    await _seed(gateway)
    reader = await gateway.headers("billing:read")
    get = gateway.client.get

    features = ok(await get("/api/v1/features?search_term=vid", headers=reader))
    feature = ok(await get("/api/v1/features/hd_photos", headers=reader))["feature"]
    plan = ok(await get(f"/api/v1/plans/{BASIC}/entitlements", headers=reader))
    one = ok(await get(f"/api/v1/plans/{BASIC}/entitlements/hd_photos", headers=reader))
    missing = await get(f"/api/v1/plans/{BASIC}/entitlements/video", headers=reader)

    assert [f["code"] for f in features["features"]] == ["video"]
    assert feature["privileges"][0]["code"] == "max_resolution"
    assert [e["code"] for e in plan["entitlements"]] == ["hd_photos"]
    assert one["entitlement"]["privileges"][0]["value"] == 2048
    assert missing.status_code == 404
    assert missing.json()["code"] == "entitlement_not_found"


async def test_subscription_overrides_are_written_audited_and_read_back(gateway: Gateway) -> None:
    await _seed(gateway)
    writer = await gateway.headers("billing:write")
    reader = await gateway.headers("billing:read")
    path = "/api/v1/subscriptions/sub-1/entitlements"
    extra = {
        "entitlements": {"video": {"max_clip_seconds": 15}, "hd_photos": {"max_resolution": 4096}}
    }

    patched = ok(await gateway.client.patch(path, json=extra, headers=writer))
    read = ok(await gateway.client.get(path, headers=reader))
    without_video = ok(await gateway.client.delete(f"{path}/video", headers=writer))
    without_hd = ok(
        await gateway.client.delete(f"{path}/hd_photos/privileges/max_resolution", headers=writer)
    )

    assert patched == read
    hd = next(e for e in read["entitlements"] if e["code"] == "hd_photos")
    assert hd["overrides"] == {"max_resolution": 4096}
    assert hd["privileges"][0]["plan_value"] == 2048
    assert [e["code"] for e in without_video["entitlements"]] == ["hd_photos"]
    assert without_hd["entitlements"][0]["privileges"] == []
    rows = await audit_rows(gateway)
    assert outcomes(rows) == [
        ("subscriptions.entitlements.update", "success", "lago", 200),
        ("subscriptions.entitlements.remove", "success", "lago", 200),
        ("subscriptions.entitlements.remove_privilege", "success", "lago", 200),
    ]
    assert [r.target for r in rows] == ["sub-1"] * 3
    assert rows[0].detail == {"features": ["hd_photos", "video"]}
    assert rows[2].detail == {"feature": "hd_photos", "privilege": "max_resolution"}


async def test_refusals_are_answered_in_lagos_shape_and_audited(gateway: Gateway) -> None:
    await _seed(gateway)
    writer = await gateway.headers("billing:write")
    path = "/api/v1/subscriptions/sub-1/entitlements"

    unknown = await gateway.client.patch(
        path, json={"entitlements": {"nope": {"x": 1}}}, headers=writer
    )
    invalid = await gateway.client.patch(
        path, json={"entitlements": {"video": {"max_clip_seconds": "ten"}}}, headers=writer
    )
    not_scalar = await gateway.client.patch(
        path, json={"entitlements": {"video": {"max_clip_seconds": [1]}}}, headers=writer
    )
    no_body = await gateway.client.patch(path, json={}, headers=writer)
    pending = await gateway.client.get(
        f"{path}?subscription_status=pending", headers=await gateway.headers("billing:read")
    )

    assert unknown.status_code == 404
    assert unknown.json()["code"] == "feature_not_found"
    assert invalid.status_code == 422
    assert invalid.json()["error_details"] == {
        "max_clip_seconds_privilege_value": ["value_is_invalid"]
    }
    assert not_scalar.status_code == 422
    assert not_scalar.json()["error_details"] == {
        "entitlements.video.max_clip_seconds": ["value_is_invalid"]
    }
    assert no_body.status_code == 400
    assert pending.status_code == 404
    assert pending.json()["code"] == "subscription_not_found"
    assert [(a, o, u, s) for a, o, u, s in outcomes(await audit_rows(gateway))] == [
        ("subscriptions.entitlements.update", "rejected", "lago", 404),
        ("subscriptions.entitlements.update", "rejected", "lago", 422),
        ("subscriptions.entitlements.update", "rejected", None, 422),
        ("subscriptions.entitlements.update", "rejected", None, 400),
    ]
