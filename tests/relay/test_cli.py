from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gateway.cli import main
from gateway.db import Database
from gateway.relay.service import enqueue_message


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_LAGO_API_URL", "http://lago.test")
    monkeypatch.setenv("GATEWAY_LAGO_API_KEY", "k")
    return CliRunner()


def _seed(database_url: str) -> None:
    async def go() -> None:
        database = Database(database_url)
        try:
            async with database.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO relay_endpoints (id, url, description, filter_types, enabled, "
                        "secret, created_at, updated_at) VALUES "
                        "('ep_a', 'https://a.example/hook', '', '[\"invoice.*\"]', :yes, "
                        "'whsec_x', 0, 0), "
                        "('ep_b', 'https://b.example/hook', '', '[\"*\"]', :no, 'whsec_y', 0, 0)"
                    ),
                    {"yes": True, "no": False},
                )
                await enqueue_message(
                    conn, message_id="m1", type="invoice.created", source="lago", data={}
                )
                await conn.execute(
                    text("UPDATE relay_deliveries SET status = 'failed', last_attempt_at = 2e9")
                )
        finally:
            await database.dispose()

    asyncio.run(go())


def _deliveries(database_url: str) -> list[tuple[str, str, int]]:
    async def go() -> list[tuple[str, str, int]]:
        database = Database(database_url)
        try:
            async with database.engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT endpoint_id, status, attempts FROM relay_deliveries ORDER BY id")
                )
                return [(r[0], r[1], r[2]) for r in rows]
        finally:
            await database.dispose()

    return asyncio.run(go())


def test_relay_endpoints_lists_every_endpoint_without_secrets(
    cli: CliRunner, database_url: str
) -> None:
    _seed(database_url)
    result = cli.invoke(main, ["relay", "endpoints"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("ep_a  enabled  invoice.*  https://a.example/hook")
    assert lines[1].startswith("ep_b  disabled")
    assert "whsec_" not in result.output


def test_relay_redeliver_requeues_a_message(cli: CliRunner, database_url: str) -> None:
    _seed(database_url)
    result = cli.invoke(main, ["relay", "redeliver", "m1"])
    assert result.exit_code == 0, result.output
    assert "queued m1 for 1 endpoint(s): ep_a" in result.output
    assert _deliveries(database_url) == [("ep_a", "pending", 0)]
    missing = cli.invoke(main, ["relay", "redeliver", "nope"])
    assert missing.exit_code == 1
    assert "no message" in missing.output
    disabled = cli.invoke(main, ["relay", "redeliver", "m1", "--endpoint", "ep_b"])
    assert disabled.exit_code == 1
    assert "disabled" in disabled.output


def test_relay_recover_requeues_failures_since_a_time(cli: CliRunner, database_url: str) -> None:
    _seed(database_url)
    later = cli.invoke(main, ["relay", "recover", "ep_a", "--since", "2040-01-01T00:00:00"])
    assert later.exit_code == 0, later.output
    assert "requeued 0 message(s)" in later.output
    result = cli.invoke(main, ["relay", "recover", "ep_a", "--since", "2024-01-01"])
    assert result.exit_code == 0, result.output
    assert "requeued 1 message(s) for ep_a" in result.output
    assert _deliveries(database_url) == [("ep_a", "pending", 0)]
