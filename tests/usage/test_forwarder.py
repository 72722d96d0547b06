"""Forwarding outcomes: Lago's 422 split by index, the dead letter and its replay, Lago
unreachable at acceptance, lost answers, Retry-After, audit rows, metrics and the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gateway.cli import main
from gateway.usage.forwarder import Forwarder
from lago.emulator import EmulatorState
from tests.conftest import LAGO_KEY, LAGO_URL, Gateway, make_settings, start_gateway
from tests.usage.servers import METRIC, seed_through


@pytest.fixture
async def gw(database_url: str, emulator: EmulatorState) -> AsyncIterator[Gateway]:
    """A gateway (workers off: each test forwards by hand) with Lago seeded with sub_1."""
    gateway, manager = await start_gateway(make_settings(database_url), emulator)
    try:
        await seed_through(gateway.runtime.lago, ["sub_1"])
        yield gateway
    finally:
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == []


def _event(tx: str, sub: str = "sub_1", **fields: Any) -> dict[str, Any]:
    return {
        "transaction_id": tx,
        "external_subscription_id": sub,
        "code": METRIC,
        "timestamp": 1756684800,
        **fields,
    }


async def _accept(gw: Gateway, events: list[dict[str, Any]]) -> None:
    headers = await gw.headers("events:write")
    response = await gw.client.post(
        "/api/v1/events/batch", json={"events": events}, headers=headers
    )
    assert response.status_code == 200, response.text


async def _forward_all(gw: Gateway) -> None:
    """Claim and forward until nothing is due (what the worker's loops do)."""
    forwarder = Forwarder(gw.runtime, gw.parts.lookups)
    while await forwarder.forward_due(100):
        pass


async def _rows(gw: Gateway) -> dict[str, dict[str, Any]]:
    async with gw.runtime.database.engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT transaction_id, status, last_error, needs_check, attempts, "
                "next_attempt_at FROM usage_events"
            )
        )
        return {row[0]: dict(row._mapping) for row in result.all()}


async def _insert_raw(gw: Gateway, tx: str, payload: dict[str, Any]) -> None:
    """An outbox row with a payload Lago refuses (the gateway's own checks would stop it)."""
    now = time.time()
    async with gw.runtime.database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO usage_events (external_subscription_id, transaction_id, code, "
                "payload, fingerprint, status, attempts, accepted_at, next_attempt_at, "
                "needs_check, accepted_by) VALUES ('sub_1', :tx, :code, :payload, 'f', "
                "'pending', 0, :now, :now, 0, 'test')"
            ),
            {"tx": tx, "code": METRIC, "payload": orjson.dumps(payload).decode(), "now": now},
        )


async def test_a_batch_lago_refuses_in_part_is_split_by_index(gw: Gateway) -> None:
    await _accept(gw, [_event("ok-1"), _event("dup-1"), _event("ok-2")])
    await _insert_raw(gw, "bad-1", _event("bad-1", timestamp="not a time"))
    # dup-1 reached Lago earlier (a lost answer): Lago's value_already_exist means delivered.
    await gw.runtime.lago.call("POST", "/events", json={"event": _event("dup-1")})
    await _forward_all(gw)
    rows = await _rows(gw)
    assert {tx: row["status"] for tx, row in rows.items()} == {
        "ok-1": "forwarded",
        "dup-1": "forwarded",
        "ok-2": "forwarded",
        "bad-1": "dead",
    }
    assert orjson.loads(rows["bad-1"]["last_error"]) == {"timestamp": ["invalid_format"]}
    assert set(gw.emulator.events) == {("sub_1", "ok-1"), ("sub_1", "dup-1"), ("sub_1", "ok-2")}


async def test_dead_events_are_listed_and_replayed_once_the_cause_is_fixed(
    gw: Gateway,
) -> None:
    await _insert_raw(gw, "bad-1", _event("bad-1", timestamp="not a time"))
    await _insert_raw(gw, "bad-2", _event("bad-2", timestamp="not a time"))
    await _forward_all(gw)
    reader = await gw.headers("billing:read")
    dead = (await gw.client.get("/gateway/outbox/dead", headers=reader)).json()
    assert [e["transaction_id"] for e in dead["events"]] == ["bad-1", "bad-2"]
    assert dead["events"][0]["last_error"] == '{"timestamp":["invalid_format"]}'
    page = (await gw.client.get("/gateway/outbox/dead?limit=1", headers=reader)).json()
    assert page["next_cursor"] is not None
    # The cause is "fixed" in place; then the replay puts the event back in the queue.
    async with gw.runtime.database.engine.begin() as conn:
        fixed = orjson.dumps(_event("bad-1")).decode()
        await conn.execute(
            text("UPDATE usage_events SET payload = :p WHERE transaction_id = 'bad-1'"),
            {"p": fixed},
        )
    admin = await gw.headers("admin")
    replay = await gw.client.post(
        "/gateway/outbox/replay", json={"transaction_ids": ["bad-1"]}, headers=admin
    )
    assert replay.json() == {"replayed": ["bad-1"]}
    await _forward_all(gw)
    rows = await _rows(gw)
    assert rows["bad-1"]["status"] == "forwarded" and rows["bad-2"]["status"] == "dead"
    assert ("sub_1", "bad-1") in gw.emulator.events


async def test_gateway_outbox_replay_and_status_from_the_command_line(
    gw: Gateway, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _accept(gw, [_event("p-1")])
    await _insert_raw(gw, "bad-1", _event("bad-1", timestamp="not a time"))
    await _forward_all(gw)
    await _accept(gw, [_event("p-2")])
    for name, value in (
        ("GATEWAY_DATABASE_URL", database_url),
        ("GATEWAY_LAGO_API_URL", LAGO_URL),
        ("GATEWAY_LAGO_API_KEY", LAGO_KEY),
    ):
        monkeypatch.setenv(name, value)
    cli = CliRunner()
    status = await asyncio.to_thread(cli.invoke, main, ["outbox", "status"])
    assert status.exit_code == 0, status.output
    lines = status.output.splitlines()
    assert lines[0] == "pending: 1"
    assert lines[1].startswith("oldest pending age: ") and lines[1].endswith("s")
    assert lines[2] == "dead: 1"
    assert lines[3] == "forward rate: 0.0 events/s (last minute)"  # one event in 60 s
    replay = await asyncio.to_thread(cli.invoke, main, ["outbox", "replay", "--all"])
    assert replay.output.strip() == "replayed 1 dead event(s)"
    assert (await _rows(gw))["bad-1"]["status"] == "pending"
    again = await asyncio.to_thread(
        cli.invoke, main, ["outbox", "replay", "--transaction-id", "nope"]
    )
    assert again.exit_code == 1
    assert again.stdout.strip() == "replayed 0 dead event(s)"
    assert again.stderr.strip() == "not dead (or unknown), left alone: nope"


async def test_events_accepted_while_lago_is_down_are_checked_before_forwarding(
    gw: Gateway,
) -> None:
    gw.emulator.faults.outage(60)
    headers = await gw.headers("events:write")
    known = await gw.client.post(
        "/api/v1/events", json={"event": _event("k-1", sub="sub_1")}, headers=headers
    )
    ghost = await gw.client.post(
        "/api/v1/events", json={"event": _event("g-1", sub="sub_ghost")}, headers=headers
    )
    assert known.status_code == 200 and ghost.status_code == 200  # Lago cannot tell: accepted
    rows = await _rows(gw)
    assert rows["g-1"]["needs_check"] == 1
    # Still down: nothing sent, nothing decided.
    await Forwarder(gw.runtime, gw.parts.lookups).forward_due(100)
    rows = await _rows(gw)
    assert rows["g-1"]["status"] == "pending" and gw.emulator.events == {}
    assert rows["g-1"]["attempts"] == 0  # a check that could not run is not an attempt
    gw.emulator.faults.clear()
    await asyncio.sleep(1.1)  # the "cannot tell" answer is remembered for a second
    async with gw.runtime.database.engine.begin() as conn:
        await conn.execute(text("UPDATE usage_events SET next_attempt_at = 0"))
    await _forward_all(gw)
    rows = await _rows(gw)
    assert rows["k-1"]["status"] == "forwarded"
    assert rows["g-1"]["status"] == "dead"
    assert orjson.loads(rows["g-1"]["last_error"]) == {
        "external_subscription_id": ["subscription_not_found"]
    }
    assert set(gw.emulator.events) == {("sub_1", "k-1")}


async def test_the_checks_before_forwarding_ask_lago_about_each_subscription_concurrently(
    gw: Gateway,
) -> None:
    """The claim stays open while its events are checked: ten unknown subscriptions must not
    cost ten of Lago's answers one after another."""
    gw.emulator.faults.outage(60)
    await _accept(gw, [_event(f"u-{i}", sub=f"sub_gone_{i}") for i in range(10)])
    assert {row["needs_check"] for row in (await _rows(gw)).values()} == {1}
    gw.emulator.faults.clear()
    await asyncio.sleep(1.1)  # the "cannot tell" answers are remembered for a second
    gw.emulator.faults.latency = 0.4
    started = time.monotonic()
    assert await Forwarder(gw.runtime, gw.parts.lookups).forward_due(100) == 10
    elapsed = time.monotonic() - started
    assert {row["status"] for row in (await _rows(gw)).values()} == {"dead"}
    assert elapsed < 2.0, f"{elapsed:.1f} s: ten lookups of 0.4 s each were not concurrent"
    assert gw.emulator.events == {}


async def test_a_batch_lago_stored_but_whose_answer_was_lost_is_not_stored_twice(
    gw: Gateway,
) -> None:
    await _accept(gw, [_event(f"l-{i}") for i in range(10)])
    gw.emulator.faults.fail_after_commit_rate = 1.0  # every request applied, then a 500
    forwarder = Forwarder(gw.runtime, gw.parts.lookups)
    await forwarder.forward_due(100)
    assert len(gw.emulator.events) == 10
    # Both halves of the split also failed: Lago, not an event; the events stay due.
    assert {row["status"] for row in (await _rows(gw)).values()} == {"pending"}
    assert not forwarder.health.well
    assert max(row["next_attempt_at"] for row in (await _rows(gw)).values()) <= time.time()
    gw.emulator.faults.clear()
    forwarder.health.succeeded()
    await _forward_all_with(forwarder)
    assert {row["status"] for row in (await _rows(gw)).values()} == {"forwarded"}
    assert len(gw.emulator.events) == 10
    # 10 refused as already held while the halves were answered 500, 10 on the resend.
    assert gw.emulator.duplicate_rejections == 20


async def _forward_all_with(forwarder: Forwarder) -> None:
    while await forwarder.forward_due(100):
        pass


async def test_a_rate_limited_lago_pauses_forwarding_for_retry_after_without_pushing_events(
    gw: Gateway,
) -> None:
    await _accept(gw, [_event("r-1")])
    gw.emulator.faults.configure({"rate_limit_rate": 1.0, "retry_after_seconds": 7})
    settings = gw.runtime.settings.model_copy(update={"forward_backoff_max_seconds": 60.0})
    # The backoff cap: 60 s.
    forwarder = Forwarder(dataclasses.replace(gw.runtime, settings=settings), gw.parts.lookups)
    await forwarder.forward_due(100)
    row = (await _rows(gw))["r-1"]
    assert row["status"] == "pending" and row["attempts"] == 1
    assert row["next_attempt_at"] <= time.time()  # still due: nothing pushed out
    assert not forwarder.health.well
    assert forwarder.health.resume_not_before >= time.monotonic() + 6
    assert await forwarder.forward_due(100) == 0  # paused: nothing claimed
    assert gw.emulator.events == {}
    await forwarder.health.close()


async def test_accepted_batches_and_forwarded_batches_leave_audit_rows(gw: Gateway) -> None:
    await _accept(gw, [_event("a-1"), _event("a-2")])
    await _forward_all(gw)
    async with gw.runtime.database.engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT action, outcome, status, actor, upstream, target_ids, detail "
                "FROM audit_entries WHERE action LIKE 'usage.%' ORDER BY id"
            )
        )
        rows = [dict(row._mapping) for row in result.all()]
    accepted, forwarded = rows
    assert accepted["action"] == "usage.events.batch" and accepted["outcome"] == "accepted"
    assert accepted["status"] == 200 and accepted["actor"].startswith("key-")
    assert _json(accepted["target_ids"]) == ["a-1", "a-2"]
    assert forwarded["action"] == "usage.forward" and forwarded["outcome"] == "forwarded"
    assert forwarded["upstream"] == "lago" and forwarded["actor"].startswith("worker:")
    assert _json(forwarded["detail"])["forwarded"] == 2
    assert "payload" not in str(rows)


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def test_usage_metrics_are_exposed_for_prometheus(gw: Gateway) -> None:
    await _accept(gw, [_event("m-1"), _event("m-1"), _event("m-2")])
    await _forward_all(gw)
    body = (await gw.client.get("/metrics")).text
    for name in (
        "gateway_usage_events_accepted_total",
        "gateway_usage_events_duplicate_total",
        "gateway_usage_events_rejected_total",
        "gateway_usage_events_forwarded_total",
        "gateway_usage_events_dead_total",
        "gateway_usage_events_pending",
        "gateway_usage_oldest_pending_age_seconds",
        "gateway_usage_forward_batch_seconds_bucket",
    ):
        assert f"\n{name}" in body, name


async def test_a_slow_lago_does_not_hold_up_acceptance(gw: Gateway) -> None:
    gw.emulator.faults.latency = 3.0  # every Lago answer takes 3 s
    headers = await gw.headers("events:write")
    response = await gw.client.post(
        "/api/v1/events", json={"event": _event("slow-1")}, headers=headers
    )
    assert response.status_code == 200
    # Accepted without Lago's answer (the lookup gave up waiting): checked before forwarding.
    assert (await _rows(gw))["slow-1"]["needs_check"] == 1
    gw.emulator.faults.clear()
