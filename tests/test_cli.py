from __future__ import annotations

import socket
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from gateway.auth import service as auth_service
from gateway.cli import main
from gateway.migrations import runner as migration_runner


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_LAGO_API_URL", "http://lago.test")
    monkeypatch.setenv("GATEWAY_LAGO_API_KEY", "k")
    return CliRunner()


def test_keys_create_prints_the_key_alone_on_the_last_line(cli: CliRunner) -> None:
    result = cli.invoke(
        main,
        ["keys", "create", "--name", "svc", "--scope", "events:write", "--scope", "billing:read"],
    )
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


def _one_line_error(result: Result, code: int = 1) -> str:
    """The single stderr line of a refused command (its exit code checked)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_revoking_an_unknown_key_is_one_line_not_a_traceback(cli: CliRunner) -> None:
    line = _one_line_error(cli.invoke(main, ["keys", "revoke", "nobody"]))
    assert line == "Error: no key named 'nobody'"


def test_creating_a_key_under_a_name_in_use_is_one_line_not_a_traceback(cli: CliRunner) -> None:
    assert cli.invoke(main, ["keys", "create", "--name", "a", "--scope", "admin"]).exit_code == 0
    again = cli.invoke(main, ["keys", "create", "--name", "a", "--scope", "admin"])
    assert _one_line_error(again) == "Error: a key named 'a' already exists"


def test_a_blank_key_name_is_a_usage_error(cli: CliRunner) -> None:
    result = cli.invoke(main, ["keys", "create", "--name", " ", "--scope", "admin"])
    assert result.exit_code == 2
    assert "must not be blank" in result.stderr


def test_replaying_unknown_transaction_ids_says_which_and_exits_1(cli: CliRunner) -> None:
    result = cli.invoke(main, ["outbox", "replay", "--transaction-id", "nope"])
    assert _one_line_error(result) == "not dead (or unknown), left alone: nope"
    assert "replayed 0 dead event(s)" in result.stdout


DATABASE_COMMANDS = [
    ["keys", "list"],
    ["keys", "create", "--name", "a", "--scope", "admin"],
    ["keys", "revoke", "a"],
    ["outbox", "status"],
    ["outbox", "replay", "--all"],
    ["relay", "endpoints"],
    ["relay", "redeliver", "m1"],
    ["relay", "recover", "ep_a", "--since", "2024-01-01"],
    ["webhooks", "status"],
    ["webhooks", "list"],
    ["webhooks", "replay", "--all"],
    ["worker"],
]


def _settings_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_LAGO_API_URL", "http://lago.test")
    monkeypatch.setenv("GATEWAY_LAGO_API_KEY", "k")


@pytest.mark.parametrize(
    "argv",
    [*DATABASE_COMMANDS, ["migrate"], ["lago", "register-webhook", "https://gw.example/hook"]],
    ids=" ".join,
)
def test_a_database_that_cannot_be_opened_is_one_line_and_exit_1(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_env(monkeypatch, f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    line = _one_line_error(CliRunner().invoke(main, argv))
    assert line.startswith("Error: cannot reach the database sqlite:///")
    assert line.endswith(": unable to open database file")


@pytest.mark.parametrize("argv", DATABASE_COMMANDS, ids=" ".join)
def test_a_database_that_is_not_migrated_says_run_gateway_migrate(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_env(monkeypatch, f"sqlite:///{tmp_path / 'empty.db'}")
    line = _one_line_error(CliRunner().invoke(main, argv))
    assert line.startswith("Error: GATEWAY_DATABASE_URL: schema is at nothing, code needs ")
    assert line.endswith("run `gateway migrate`")


def test_a_missing_required_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_LAGO_API_URL", "http://lago.test")
    monkeypatch.delenv("GATEWAY_LAGO_API_KEY", raising=False)
    line = _one_line_error(CliRunner().invoke(main, ["keys", "list"]), code=2)
    assert "GATEWAY_LAGO_API_KEY is required" in line


def _explode(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom\nsecond line")


def test_an_unexpected_error_is_one_line_naming_the_debug_switch(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_service, "list_keys", _explode)
    line = _one_line_error(cli.invoke(main, ["keys", "list"]))
    assert line == (
        "Error: unexpected RuntimeError: boom (--debug or GATEWAY_DEBUG=1 shows the traceback)"
    )


@pytest.mark.parametrize("switch", ["--debug", "GATEWAY_DEBUG=1"])
def test_debug_keeps_the_traceback_of_an_unexpected_error(
    switch: str, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_service, "list_keys", _explode)
    argv = ["keys", "list"]
    if switch == "--debug":
        argv.insert(0, switch)
    else:
        monkeypatch.setenv("GATEWAY_DEBUG", "1")
    result = cli.invoke(main, argv)
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)


def test_version_is_the_installed_distributions() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"gateway, version {version('billing-gateway')}\n"


def _command_paths(group: click.Group, prefix: list[str]) -> list[list[str]]:
    paths = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, [*prefix, name]))
        else:
            paths.append([*prefix, name])
    return paths


@pytest.mark.parametrize("path", _command_paths(main, []), ids=lambda p: " ".join(p) or "gateway")
def test_dash_h_is_help_on_every_command(path: list[str]) -> None:
    short = CliRunner().invoke(main, [*path, "-h"])
    long = CliRunner().invoke(main, [*path, "--help"])
    assert short.exit_code == 0, short.output
    assert short.output.startswith("Usage: ")
    assert short.output == long.output


def test_serve_refuses_a_busy_port_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "gateway.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setattr(migration_runner, "ensure_current", _explode)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    line = _one_line_error(result)
    assert line == f"Error: cannot listen on 127.0.0.1:{port}: address already in use"
    assert not database.exists()


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_serve_refuses_a_port_out_of_range_as_a_usage_error(port: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", port])
    assert result.exit_code == 2
    assert "Invalid value for '--port'" in result.stderr
