"""``gateway lago register-webhook URL``: registers once, updates only what differs."""

from __future__ import annotations

import httpx
import pytest
import respx
from click.testing import CliRunner

from gateway.cli import main
from gateway.integrations.lago.client import LagoClient
from gateway.webhooks import cli as webhooks_cli
from gateway.webhooks.registration import register_lago_endpoint
from lago.emulator import EmulatorState, create_app
from tests.conftest import LAGO_KEY, LAGO_URL
from tests.webhooks.conftest import Hooks

URL = "https://billing.example.com/gateway/webhooks/lago"


async def test_registering_twice_creates_one_hmac_endpoint(hooks: Hooks) -> None:
    lago = hooks.gateway.runtime.lago

    first, endpoint = await register_lago_endpoint(lago, URL, name="billing-gateway")
    second, same = await register_lago_endpoint(lago, URL, name="billing-gateway")

    assert (first, second) == ("created", "unchanged")
    assert same["lago_id"] == endpoint["lago_id"]
    stored = list(hooks.emulator.webhook_endpoints.values())
    assert [(e["webhook_url"], e["signature_algo"]) for e in stored] == [(URL, "hmac")]


@respx.mock(base_url=f"{LAGO_URL}/api/v1", assert_all_called=True)
async def test_endpoint_signing_with_jwt_is_switched_to_hmac(respx_mock: respx.MockRouter) -> None:
    existing = {
        "lago_id": "e1",
        "lago_organization_id": "o1",
        "webhook_url": URL,
        "signature_algo": "jwt",
        "created_at": "2025-01-01T00:00:00Z",
    }
    respx_mock.get("/webhook_endpoints", params={"page": "1"}).respond(
        json={
            "webhook_endpoints": [existing],
            "meta": {"current_page": 1, "next_page": None, "total_count": 1},
        }
    )
    update = respx_mock.put("/webhook_endpoints/e1").respond(
        json={"webhook_endpoint": {**existing, "signature_algo": "hmac"}}
    )
    lago = LagoClient(LAGO_URL, LAGO_KEY)
    try:
        outcome, endpoint = await register_lago_endpoint(lago, URL)
    finally:
        await lago.aclose()

    assert outcome == "updated"
    assert endpoint["signature_algo"] == "hmac"
    assert httpx.Request.read(update.calls.last.request) == (
        b'{"webhook_endpoint":{"webhook_url":"' + URL.encode() + b'","signature_algo":"hmac"}}'
    )


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, EmulatorState]:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_LAGO_API_URL", LAGO_URL)
    monkeypatch.setenv("GATEWAY_LAGO_API_KEY", LAGO_KEY)
    monkeypatch.setenv("GATEWAY_LAGO_WEBHOOK_HMAC_KEY", "k")
    state = EmulatorState()
    app = create_app(state, api_key=LAGO_KEY, validate=True)
    monkeypatch.setattr(
        webhooks_cli,
        "lago_client",
        lambda settings: LagoClient(LAGO_URL, LAGO_KEY, transport=httpx.ASGITransport(app=app)),
    )
    return CliRunner(), state


def test_cli_registers_the_gateway_once(cli: tuple[CliRunner, EmulatorState]) -> None:
    runner, state = cli

    first = runner.invoke(main, ["lago", "register-webhook", URL])
    second = runner.invoke(main, ["lago", "register-webhook", URL])

    assert first.exit_code == 0, first.output
    assert first.output.startswith("created: ")
    assert second.output.startswith("unchanged: ")
    assert len(state.webhook_endpoints) == 1
    assert state.contract_violations == []


def test_cli_refuses_a_url_that_is_not_http(cli: tuple[CliRunner, EmulatorState]) -> None:
    runner, state = cli

    result = runner.invoke(main, ["lago", "register-webhook", "ftp://x"])

    assert result.exit_code == 2
    assert state.webhook_endpoints == {}


def _insert_dead(database_url: str) -> None:
    import time

    from sqlalchemy import create_engine, text

    from gateway.db import sync_url

    engine = create_engine(sync_url(database_url))
    now = time.time()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO inbound_webhooks (source, provider_event_id, event_type, body, "
                "body_sha256, received_at, status, attempts, next_attempt_at, last_error, "
                "relayed_at) VALUES ('lago', 'uk_dead', 'invoice.created', '{}', :sha, :now, "
                "'dead', 1, :now, 'on_invoice_issued: LagoApiError: Lago answered 404', :now)"
            ),
            {"sha": "0" * 64, "now": now},
        )
    engine.dispose()


def test_cli_status_list_and_replay_of_dead_webhooks(
    cli: tuple[CliRunner, EmulatorState], database_url: str
) -> None:
    runner, _ = cli
    _insert_dead(database_url)

    status = runner.invoke(main, ["webhooks", "status"])
    listed = runner.invoke(main, ["webhooks", "list"])
    unknown = runner.invoke(main, ["webhooks", "replay", "--id", "999"])
    replayed = runner.invoke(main, ["webhooks", "replay", "--id", "1"])
    after = runner.invoke(main, ["webhooks", "status"])
    alias = runner.invoke(main, ["webhooks", "retry", "--all"])
    usage = runner.invoke(main, ["webhooks", "replay"])

    assert status.exit_code == 0, status.output
    assert "waiting: 0" in status.output and "dead: 1" in status.output
    assert listed.exit_code == 0, listed.output
    assert "uk_dead" in listed.output and "Lago answered 404" in listed.output
    assert unknown.exit_code == 1
    assert "not dead (or unknown), left alone: 999" in unknown.output
    assert replayed.output.strip() == "replaying 1 dead webhook(s)"
    assert "waiting: 1" in after.output and "dead: 0" in after.output
    assert alias.output.strip() == "replaying 0 dead webhook(s)"
    assert usage.exit_code == 2
