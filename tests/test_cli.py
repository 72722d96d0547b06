from __future__ import annotations

import pytest
from click.testing import CliRunner

from gateway.cli import main


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_LAGO_API_URL", "http://lago.test")
    monkeypatch.setenv("GATEWAY_LAGO_API_KEY", "k")
    return CliRunner()


def test_keys_create_prints_the_key_alone_on_the_last_line(cli: CliRunner) -> None:
    result = cli.invoke(main, ["keys", "create", "--name", "svc", "--scope", "events:write",
                               "--scope", "billing:read"])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("gw_") and " " not in last
    listed = cli.invoke(main, ["keys", "list"])
    assert listed.output.split("\t")[:3] == ["svc", "billing:read events:write", "active"]
    assert last not in listed.output


def test_keys_revoke_and_duplicate_names(cli: CliRunner) -> None:
    assert cli.invoke(main, ["keys", "create", "--name", "a", "--scope", "admin"]).exit_code == 0
    again = cli.invoke(main, ["keys", "create", "--name", "a", "--scope", "admin"])
    assert again.exit_code != 0
    assert cli.invoke(main, ["keys", "revoke", "a"]).exit_code == 0
    assert "\trevoked\t" in cli.invoke(main, ["keys", "list"]).output
    assert cli.invoke(main, ["keys", "revoke", "nobody"]).exit_code != 0


def test_unknown_scope_is_refused_by_the_cli(cli: CliRunner) -> None:
    result = cli.invoke(main, ["keys", "create", "--name", "x", "--scope", "everything"])
    assert result.exit_code == 2
    assert "everything" in result.output


def test_outbox_status_on_an_empty_outbox(cli: CliRunner) -> None:
    result = cli.invoke(main, ["outbox", "status"])
    assert result.exit_code == 0, result.output
    assert "pending: 0" in result.output
    assert "dead: 0" in result.output


def test_outbox_replay_needs_a_selection(cli: CliRunner) -> None:
    assert cli.invoke(main, ["outbox", "replay"]).exit_code == 2
    result = cli.invoke(main, ["outbox", "replay", "--all"])
    assert result.exit_code == 0
    assert "replayed 0" in result.output


def test_serve_refuses_a_bad_setting_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_FORWARD_CONCURRENCY", "many")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2
    assert "GATEWAY_FORWARD_CONCURRENCY" in result.output
