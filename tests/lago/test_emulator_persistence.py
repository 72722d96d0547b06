"""The embedded emulator's state file: it survives a restart of the gateway, keys included,
every field round-trips, and a write is whole or not at all."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.app import create_app
from gateway.embedded import STATE_FILE_NAME
from gateway.migrations.runner import upgrade
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from lago.emulator.autosave import Autosave
from lago.emulator.outbox import emit
from lago.emulator.persistence import dump, load, restore, save, write_atomically
from tests.conftest import make_settings

pytestmark = pytest.mark.asyncio


def _public(key: rsa.RSAPrivateKey) -> Any:
    return key.public_key().public_numbers()


async def _embedded(url: str) -> tuple[Any, LifespanManager]:
    app = create_app(make_settings(url, lago_api_url="", lago_api_key=""))
    manager = LifespanManager(app)
    await manager.__aenter__()
    return app, manager


async def test_the_emulators_state_survives_a_restart_of_the_gateway(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    app, manager = await _embedded(url)
    lago = app.state.parts.runtime.lago
    await lago.call("POST", "/customers", json={"customer": {"external_id": "acme"}})
    subscription = {"external_customer_id": "acme", "plan_code": "basic_monthly",
                    "external_id": "sub_acme"}  # fmt: skip
    await lago.call("POST", "/subscriptions", json={"subscription": subscription})
    event = {"transaction_id": "gen_1", "external_subscription_id": "sub_acme",
             "code": "photo_generation", "properties": {"quality": "hd"}}  # fmt: skip
    await lago.call("POST", "/events", json={"event": event})
    before = app.state.emulator.state.lago
    keys = (before.hmac_key, before.organization_id, _public(before.rsa_private_key))
    await manager.__aexit__(None, None, None)

    file = tmp_path / STATE_FILE_NAME
    app, manager = await _embedded(url)
    try:
        lago = app.state.parts.runtime.lago
        customer = await lago.call("GET", "/customers/acme")
        found = await lago.call("GET", "/subscriptions/sub_acme")
        stored = await lago.call("GET", "/events/gen_1")
        after = app.state.emulator.state.lago
    finally:
        await manager.__aexit__(None, None, None)

    assert customer["customer"]["external_id"] == "acme"
    assert found["subscription"]["plan_code"] == "basic_monthly"
    assert stored["event"]["properties"] == {"quality": "hd"}
    assert (after.hmac_key, after.organization_id, _public(after.rsa_private_key)) == keys
    assert stat.S_IMODE(file.stat().st_mode) == 0o600  # it holds signing keys


def _filled() -> EmulatorState:
    state = EmulatorState()
    state.webhook_endpoints["e1"] = {"lago_id": "e1", "webhook_url": "http://x.test",
                                     "signature_algo": "hmac", "event_types": None}  # fmt: skip
    event = {"transaction_id": "t1", "properties": {"n": 1}}
    state.events[("sub_1", "t1")] = event
    state.events_by_transaction["t1"] = event
    state.requests_by_status[200] += 3
    state.next_sequence("invoice")
    emit(state, "customer.created", "customer", {"external_id": "acme"})
    return state


async def test_every_data_field_round_trips_and_shared_records_stay_shared() -> None:
    state = _filled()
    again = EmulatorState()

    restore(again, dump(state))

    skipped = {"clock", "faults", "contract_violations"}
    for spec in dataclasses.fields(state):
        if spec.name not in skipped:
            assert getattr(again, spec.name) == getattr(state, spec.name), spec.name
    assert again.events_by_transaction["t1"] is again.events[("sub_1", "t1")]
    assert again.webhooks_pending[0].payload["customer"] == {"external_id": "acme"}
    assert _public(again.rsa_private_key) == _public(state.rsa_private_key)


async def test_a_failed_write_leaves_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / STATE_FILE_NAME
    write_atomically(path, b"previous")

    def broken(source: Any, target: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, b"next")

    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE_NAME]  # no temporary left


async def test_only_state_changing_requests_are_written_and_a_flush_writes_them(
    tmp_path: Path,
) -> None:
    state, path = EmulatorState(), tmp_path / STATE_FILE_NAME
    saving = Autosave(create_emulator(state, api_key="k"), state, path)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=saving),
        base_url="http://lago.test/api/v1",
        headers={"Authorization": "Bearer k"},
    )

    await client.get("/customers")
    saving.flush()
    unchanged = path.exists()
    await client.post("/customers", json={"customer": {"external_id": "acme"}})
    saving.flush()
    reloaded = EmulatorState()

    assert not unchanged
    assert load(reloaded, path)
    assert list(reloaded.customers) == ["acme"]


async def test_an_emulator_made_by_create_app_keeps_its_state_in_memory(tmp_path: Path) -> None:
    state = EmulatorState()
    app = create_emulator(state)

    assert not isinstance(app, Autosave)
    save(state, tmp_path / "explicit.json")  # only when asked
    assert list(tmp_path.iterdir()) == [tmp_path / "explicit.json"]
