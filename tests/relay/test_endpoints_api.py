from __future__ import annotations

from typing import Any

import pytest
from standardwebhooks import Webhook

from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway


async def _audit(gw: Gateway, action: str) -> list[dict[str, Any]]:
    response = await gw.client.get(
        "/gateway/audit", params={"action": action}, headers=await gw.headers("admin")
    )
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def test_endpoint_lifecycle_create_read_update_delete(gateway: Gateway) -> None:
    admin = await gateway.headers("admin")
    created = await gateway.client.post(
        "/gateway/endpoints",
        json={
            "url": "https://93.184.216.34/hooks",
            "description": "billing",
            "filter_types": ["invoice.*"],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    endpoint = body["endpoint"]
    assert body["secret"].startswith("whsec_")
    Webhook(body["secret"])  # a valid Standard Webhooks secret
    assert "secret" not in endpoint
    assert endpoint["filter_types"] == ["invoice.*"]
    assert endpoint["enabled"] is True
    ep = f"/gateway/endpoints/{endpoint['id']}"

    assert (await gateway.client.get(ep, headers=admin)).json()["endpoint"] == endpoint
    listed = (await gateway.client.get("/gateway/endpoints", headers=admin)).json()
    assert [e["id"] for e in listed["endpoints"]] == [endpoint["id"]]
    secret = (await gateway.client.get(f"{ep}/secret", headers=admin)).json()
    assert secret == {
        "secret": body["secret"],
        "previous_secret": None,
        "previous_secret_expires_at": None,
    }

    patched = await gateway.client.patch(
        ep, json={"filter_types": ["payment_intent.*", "*"], "enabled": False}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["endpoint"]["filter_types"] == ["*", "payment_intent.*"]
    assert patched.json()["endpoint"]["enabled"] is False
    assert patched.json()["endpoint"]["description"] == "billing"
    enabled = await gateway.client.patch(ep, json={"enabled": True}, headers=admin)
    assert enabled.json()["endpoint"]["disabled_reason"] is None

    assert (await gateway.client.delete(ep, headers=admin)).status_code == 204
    assert (await gateway.client.get(ep, headers=admin)).status_code == 404
    assert (await gateway.client.delete(ep, headers=admin)).status_code == 404

    for action in ("create", "update", "delete", "secret_read"):
        entries = await _audit(gateway, f"relay.endpoint.{action}")
        assert entries and all(e["target"] == endpoint["id"] for e in entries), action
        assert all(body["secret"] not in str(e) for e in entries)


async def test_endpoints_need_the_admin_scope(gateway: Gateway) -> None:
    reader = await gateway.headers("billing:read", "billing:write")
    for method, path in [
        ("POST", "/gateway/endpoints"),
        ("GET", "/gateway/endpoints"),
        ("GET", "/gateway/endpoints/ep_x"),
        ("GET", "/gateway/endpoints/ep_x/secret"),
        ("POST", "/gateway/endpoints/ep_x/secret/rotate"),
        ("POST", "/gateway/endpoints/ep_x/recover?since=2024-01-01T00:00:00Z"),
        ("POST", "/gateway/messages/m/redeliver"),
    ]:
        response = await gateway.client.request(
            method, path, headers=reader, json={"url": "https://93.184.216.34/"}
        )
        assert response.status_code == 403, (method, path)
    assert (await gateway.client.get("/gateway/endpoints")).status_code == 401


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::127.0.0.1]/hook",
        "http://[64:ff9b::7f00:1]/hook",
        "http://[2002:7f00:1::1]/hook",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",
        "http://[fd00::1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "ftp://93.184.216.34/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://user:pw@93.184.216.34/hook",
        "not a url",
    ],
)
async def test_private_and_non_http_urls_are_refused_naming_the_field(
    gateway: Gateway, url: str
) -> None:
    admin = await gateway.headers("admin")
    response = await gateway.client.post("/gateway/endpoints", json={"url": url}, headers=admin)
    assert response.status_code == 422, response.text
    assert list(response.json()["error_details"]) == ["url"]
    listed = (await gateway.client.get("/gateway/endpoints", headers=admin)).json()
    assert listed["endpoints"] == []


async def test_a_patch_to_a_private_url_is_refused_too(gateway: Gateway) -> None:
    admin = await gateway.headers("admin")
    created = await gateway.client.post(
        "/gateway/endpoints", json={"url": "https://93.184.216.34/"}, headers=admin
    )
    ep = f"/gateway/endpoints/{created.json()['endpoint']['id']}"
    response = await gateway.client.patch(ep, json={"url": "http://127.0.0.1/"}, headers=admin)
    assert response.status_code == 422
    assert list(response.json()["error_details"]) == ["url"]
    assert (await gateway.client.get(ep, headers=admin)).json()["endpoint"][
        "url"
    ] == "https://93.184.216.34/"


async def test_private_urls_are_allowed_when_the_setting_says_so(
    database_url: str, emulator: EmulatorState
) -> None:
    gw, manager = await start_gateway(
        make_settings(database_url, relay_allow_private=True), emulator
    )
    try:
        admin = await gw.headers("admin")
        for url in ("http://127.0.0.1:9000/hook", "http://receiver.internal/hook"):
            response = await gw.client.post("/gateway/endpoints", json={"url": url}, headers=admin)
            assert response.status_code == 201, response.text
        refused = await gw.client.post(
            "/gateway/endpoints", json={"url": "ftp://127.0.0.1/"}, headers=admin
        )
        assert refused.status_code == 422
    finally:
        await gw.client.aclose()
        await manager.__aexit__(None, None, None)


@pytest.mark.parametrize(
    "filters", [[], ["invoice created"], ["a" * 300], ["invoice.*", "ok", "$bad"]]
)
async def test_invalid_filters_are_refused(gateway: Gateway, filters: list[str]) -> None:
    response = await gateway.client.post(
        "/gateway/endpoints",
        json={"url": "https://93.184.216.34/", "filter_types": filters},
        headers=await gateway.headers("admin"),
    )
    assert response.status_code == 422
    assert list(response.json()["error_details"]) == ["filter_types"]


async def test_rotation_keeps_the_previous_secret_for_a_day(gateway: Gateway) -> None:
    admin = await gateway.headers("admin")
    created = await gateway.client.post(
        "/gateway/endpoints", json={"url": "https://93.184.216.34/"}, headers=admin
    )
    old = created.json()["secret"]
    ep = f"/gateway/endpoints/{created.json()['endpoint']['id']}"
    rotated = await gateway.client.post(f"{ep}/secret/rotate", headers=admin)
    assert rotated.status_code == 200
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != old
    assert body["previous_secret"] == old
    assert body["previous_secret_expires_at"] is not None
    assert (await gateway.client.get(f"{ep}/secret", headers=admin)).json() == body
    assert await _audit(gateway, "relay.endpoint.secret_rotate")
