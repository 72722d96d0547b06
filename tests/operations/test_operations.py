from __future__ import annotations

import pytest

from gateway.config import SettingsError, load_settings
from tests.conftest import Gateway


async def test_health_ready_metrics_and_docs(gateway: Gateway) -> None:
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok"}
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "lago": "ok"}
    metrics = await gateway.client.get("/metrics")
    assert "gateway_usage_events_accepted_total" in metrics.text
    assert (await gateway.client.get("/docs")).status_code == 200
    assert "/api/v1/events/batch" in (await gateway.client.get("/openapi.json")).json()["paths"]


async def test_readyz_reports_lago_down_but_stays_ready(gateway: Gateway) -> None:
    gateway.emulator.faults.outage(60)
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["lago"] == "unreachable"


async def test_every_response_carries_a_request_id(gateway: Gateway) -> None:
    response = await gateway.client.get("/healthz", headers={"X-Request-Id": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
    assert len((await gateway.client.get("/healthz")).headers["x-request-id"]) == 32


async def test_unknown_route_is_404_in_lagos_shape(gateway: Gateway) -> None:
    response = await gateway.client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_oversized_body_is_413(gateway: Gateway) -> None:
    headers = await gateway.headers("events:write")
    body = b'{"events": [' + b" " * (6 * 1024 * 1024) + b"]}"
    response = await gateway.client.post("/api/v1/events/batch", content=body, headers=headers)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GATEWAY_BATCH_MAX_EVENTS": "lots"}, "GATEWAY_BATCH_MAX_EVENTS"),
        ({"GATEWAY_LAGO_API_URL": "http://lago:3000"}, "GATEWAY_LAGO_API_KEY"),
        ({"GATEWAY_DATABASE_URL": "postgresql://db/gw"}, "GATEWAY_LAGO_API_URL"),
        (
            {
                "GATEWAY_DATABASE_URL": "mysql://db/gw",
                "GATEWAY_LAGO_API_URL": "http://l",
                "GATEWAY_LAGO_API_KEY": "k",
            },
            "GATEWAY_DATABASE_URL",
        ),
    ],
)
def test_bad_setting_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_embedded_default_needs_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_DATABASE_URL", "GATEWAY_LAGO_API_URL", "GATEWAY_LAGO_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.is_sqlite and settings.uses_emulator
