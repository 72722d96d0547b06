from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from gateway.catalog import cli as catalog_cli
from gateway.cli import main
from gateway.config import Settings
from gateway.integrations.lago.client import LagoClient
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from tests.catalog.conftest import CATALOG_FILE, LAGO_KEY


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: EmulatorState) -> Path:
    """The CLI's settings point at a real-looking Lago, served by the emulator in process."""
    database = tmp_path / "gateway.db"
    monkeypatch.setenv("GATEWAY_LAGO_API_URL", "http://lago.test")
    monkeypatch.setenv("GATEWAY_LAGO_API_KEY", LAGO_KEY)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{database}")

    def client(settings: Settings) -> LagoClient:
        app = create_emulator(emulator, api_key=LAGO_KEY)
        transport = httpx.ASGITransport(app=app)
        return LagoClient(settings.lago_api_url, settings.lago_key, transport=transport)

    monkeypatch.setattr(catalog_cli, "lago_client", client)
    return database


def test_catalog_commands_apply_once_audit_export_and_refuse_a_broken_file(
    cli_env: Path, emulator: EmulatorState, tmp_path: Path
) -> None:
    runner = CliRunner()

    dry = runner.invoke(main, ["catalog", "apply", "--dry-run", str(CATALOG_FILE)])
    first = runner.invoke(main, ["catalog", "apply", str(CATALOG_FILE)])
    second = runner.invoke(main, ["catalog", "apply", str(CATALOG_FILE)])
    exported_file = tmp_path / "exported.yaml"
    export = runner.invoke(
        main, ["catalog", "export", "--base", str(CATALOG_FILE), "-o", str(exported_file)]
    )
    again = runner.invoke(main, ["catalog", "apply", str(exported_file)])
    broken_file = tmp_path / "broken.yaml"
    broken_file.write_text("plans:\n  - code: x\n    name: X\n    interval: daily\n")
    broken = runner.invoke(main, ["catalog", "apply", str(broken_file)])

    assert dry.exit_code == 0, dry.output
    assert "dry run: 21 change(s) planned, nothing applied" in dry.output
    assert first.exit_code == 0, first.output
    assert "[12/21] create coupon LAUNCH15" in first.output
    assert second.exit_code == 0
    assert "nothing to do: Lago already matches the catalog" in second.output
    assert export.exit_code == 0, export.output
    assert "nothing to do" in again.output
    assert broken.exit_code == 1
    assert f"{broken_file}:4: plans[0].interval: must be one of weekly" in broken.output
    assert len(emulator.plans) == 5
    with sqlite3.connect(cli_env) as db:
        actions = db.execute("SELECT action, target FROM audit_entries ORDER BY id").fetchall()
    assert len(actions) == 21
    assert ("catalog.create", "plan:premium_yearly") in actions


def test_catalog_apply_on_the_embedded_default_needs_the_running_gateway(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GATEWAY_LAGO_API_URL", raising=False)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'gateway.db'}")
    closed = "http://127.0.0.1:9"  # nothing listens: no `gateway serve` there

    result = CliRunner().invoke(main, ["catalog", "apply", "--dry-run", "--gateway-url", closed])

    assert result.exit_code == 1
    assert f"Lago at {closed}/lago" in result.output
    assert "gateway serve" in result.output


def test_catalog_export_to_a_folder_that_does_not_exist_is_one_line(
    cli_env: Path, tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "catalog.yaml"

    result = CliRunner().invoke(main, ["catalog", "export", "--lago-only", "-o", str(target)])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr == f"Error: cannot write {target}: No such file or directory\n"
