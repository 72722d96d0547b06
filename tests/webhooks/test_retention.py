"""Inbound retention: old handled webhooks lose their body, never their dedup keys."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy import inspect, text

from gateway import worker
from gateway.config import Settings
from gateway.db import Database
from gateway.webhooks import retention, store
from gateway.webhooks.models import DEAD, HANDLED, PRUNED_BODY, RECEIVED
from gateway.webhooks.processor import Processor
from tests.webhooks.conftest import (
    LAGO_PATH,
    STRIPE_PATH,
    Hooks,
    lago_body,
    lago_headers,
    stripe_event,
    stripe_header,
)

DAY = 86_400.0
NOW = time.time()


async def _insert(database: Database, rows: list[tuple[str, str, float, float | None]]) -> None:
    """Rows of (provider event id, status, received_at, handled_at); the body names the id."""
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO inbound_webhooks (source, provider_event_id, event_type, body, "
                "body_sha256, received_at, status, attempts, next_attempt_at, handled_at) VALUES "
                "('lago', :id, 'invoice.created', :body, :sha, :received, :status, 1, "
                ":received, :handled)"
            ),
            [
                {
                    "id": id_,
                    "body": _body(id_),
                    "sha": hashlib.sha256(_body(id_).encode()).hexdigest(),
                    "received": received,
                    "status": status,
                    "handled": handled,
                }
                for id_, status, received, handled in rows
            ],
        )


def _body(provider_id: str) -> str:
    return f'{{"webhook_type":"invoice.created","id":"{provider_id}"}}'


async def _bodies(database: Database) -> dict[str, str]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(text("SELECT provider_event_id, body FROM inbound_webhooks"))
        return {row[0]: row[1] for row in rows}


async def _audits(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT actor, outcome, detail FROM audit_entries "
                "WHERE action = 'webhooks.retention.prune' ORDER BY id"
            )
        )
        # A JSON column read through raw SQL: a string on SQLite, parsed on PostgreSQL.
        return [{"actor": r[0], "outcome": r[1], "detail": _json(r[2])} for r in rows]


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


async def _age_everything(hooks: Hooks, days: float) -> None:
    async with hooks.gateway.runtime.database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE inbound_webhooks SET received_at = :at, handled_at = :at"),
            {"at": NOW - days * DAY},
        )


async def _post_lago(hooks: Hooks, body: bytes, key: str) -> Any:
    response = await hooks.client.post(LAGO_PATH, content=body, headers=lago_headers(body, key))
    assert response.status_code == 200, response.text
    return response.json()


async def _post_stripe(hooks: Hooks, body: bytes) -> Any:
    headers = {"Stripe-Signature": stripe_header(body)}
    response = await hooks.client.post(STRIPE_PATH, content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_old_handled_webhooks_lose_their_body_and_a_replay_is_still_not_relayed(
    hooks: Hooks,
) -> None:
    database = hooks.gateway.runtime.database
    lago, stripe = lago_body(), stripe_event("evt_old")
    await _post_lago(hooks, lago, "uk_old")
    await _post_stripe(hooks, stripe)
    processor = Processor(hooks.gateway.runtime, worker.WEBHOOK_HANDLERS)
    assert await processor.process_due() == 2
    before = await hooks.inbound()
    await _age_everything(hooks, 40)
    counted = REGISTRY.get_sample_value("gateway_webhooks_pruned_total") or 0.0

    assert await retention.prune(database, 30, now=NOW) == 2

    after = await hooks.inbound()
    assert [r.body for r in after] == [PRUNED_BODY, PRUNED_BODY]
    assert [(r.id, r.source, r.provider_event_id, r.status) for r in after] == [
        (r.id, r.source, r.provider_event_id, r.status) for r in before
    ]
    assert REGISTRY.get_sample_value("gateway_webhooks_pruned_total") == counted + 2
    # A captured copy comes back: same key, or the same HMAC-signed body under a fresh key.
    assert (await _post_lago(hooks, lago, "uk_old"))["duplicate"] is True
    assert (await _post_lago(hooks, lago, "uk_fresh"))["duplicate"] is True
    assert (await _post_stripe(hooks, stripe))["duplicate"] is True
    assert await processor.process_due() == 0
    assert len(await hooks.inbound()) == 2
    assert len(await hooks.relay_messages()) == 2


async def test_waiting_failed_and_young_webhooks_keep_their_body(hooks: Hooks) -> None:
    database = hooks.gateway.runtime.database
    await _insert(
        database,
        [
            ("waiting", RECEIVED, NOW - 90 * DAY, None),
            ("given_up", DEAD, NOW - 90 * DAY, None),
            ("young", HANDLED, NOW - 2 * DAY, NOW - 2 * DAY),
            ("handled_lately", HANDLED, NOW - 90 * DAY, NOW - 3 * DAY),
            ("old", HANDLED, NOW - 31 * DAY, NOW - 31 * DAY),
        ],
    )

    assert await retention.prune(database, 30, now=NOW) == 1

    bodies = await _bodies(database)
    assert bodies.pop("old") == PRUNED_BODY
    assert bodies == {name: _body(name) for name in bodies}


async def test_a_failed_webhook_retried_after_the_retention_still_has_its_body_to_handle(
    hooks: Hooks,
) -> None:
    database = hooks.gateway.runtime.database
    await _insert(database, [("given_up", DEAD, NOW - 90 * DAY, None)])
    await retention.prune(database, 30, now=NOW)
    async with database.engine.begin() as conn:
        requeued = await store.replay_dead(conn, None)

    assert len(requeued) == 1
    assert await Processor(hooks.gateway.runtime, worker.WEBHOOK_HANDLERS).process_due() == 1
    assert [(r.status, r.body) for r in await hooks.inbound()] == [(HANDLED, _body("given_up"))]
    assert len(await hooks.relay_messages()) == 1


async def test_a_pruned_webhook_is_never_requeued_nor_handled_again(hooks: Hooks) -> None:
    database = hooks.gateway.runtime.database
    await _insert(database, [("old", HANDLED, NOW - 40 * DAY, NOW - 40 * DAY)])
    await retention.prune(database, 30, now=NOW)
    (pruned,) = await hooks.inbound()
    async with database.engine.begin() as conn:
        # What `gateway webhooks retry --all` and `--id <id>` run: only failed rows qualify.
        assert await store.replay_dead(conn, None) == []
        assert await store.replay_dead(conn, [pruned.id]) == []

    assert await store.claim_due(database, 10, 60.0, now=NOW + 365 * DAY) == []
    status = await store.status(database, with_handled=True)
    assert (status.received, status.handled, status.dead) == (0, 1, 0)
    assert [(r.status, r.body) for r in await hooks.inbound()] == [(HANDLED, PRUNED_BODY)]


async def test_pruning_walks_id_ranges_audits_each_and_skips_what_is_already_pruned(
    hooks: Hooks,
) -> None:
    database = hooks.gateway.runtime.database
    await _insert(database, [(f"w{n}", HANDLED, NOW - 60 * DAY, NOW - 60 * DAY) for n in range(7)])

    assert await retention.prune(database, 30, now=NOW, range_ids=3) == 7
    assert await retention.prune(database, 30, now=NOW, range_ids=3) == 0

    audits = await _audits(database)
    assert [a["detail"]["webhooks"] for a in audits] == [3, 3, 1]
    assert {a["outcome"] for a in audits} == {"body_cleared"}
    assert all(a["actor"].startswith("worker:") for a in audits)
    assert set((await _bodies(database)).values()) == {PRUNED_BODY}


async def test_pruning_stops_at_the_first_range_younger_than_the_cut_off(hooks: Hooks) -> None:
    database = hooks.gateway.runtime.database
    await _insert(database, [("old", HANDLED, NOW - 60 * DAY, NOW - 60 * DAY)])
    await _insert(database, [(f"young{n}", HANDLED, NOW - DAY, NOW - DAY) for n in range(4)])
    # Ids grow with receipt time: an old row after young ones does not happen in use; here it
    # shows that the walk ends at the first young range instead of reading on.
    await _insert(database, [("after_young", HANDLED, NOW - 60 * DAY, NOW - 60 * DAY)])

    assert await retention.prune(database, 30, now=NOW, range_ids=2) == 1
    assert (await _bodies(database))["after_young"] == _body("after_young")


async def test_workers_pruning_at_once_clear_each_body_once(hooks: Hooks) -> None:
    database = hooks.gateway.runtime.database
    await _insert(database, [(f"w{n}", HANDLED, NOW - 60 * DAY, NOW - 60 * DAY) for n in range(40)])

    counts = await asyncio.gather(
        *(retention.prune(database, 30, now=NOW, range_ids=5) for _ in range(3))
    )

    assert sum(counts) == 40
    assert sum(a["detail"]["webhooks"] for a in await _audits(database)) == 40


async def test_the_prune_index_exists(hooks: Hooks) -> None:
    async with hooks.gateway.runtime.database.engine.connect() as conn:
        names = await conn.run_sync(
            lambda sync: {i["name"] for i in inspect(sync).get_indexes("inbound_webhooks")}
        )
    assert "ix_inbound_webhooks_prunable" in names


def test_the_retention_is_one_setting_defaulting_to_thirty_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings.model_fields["webhook_retention_days"].default == 30.0
    monkeypatch.setenv("GATEWAY_WEBHOOK_RETENTION_DAYS", "7.5")
    assert Settings().webhook_retention_days == 7.5
    monkeypatch.setenv("GATEWAY_WEBHOOK_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError):
        Settings()


async def test_the_job_runs_in_every_worker_and_stops_when_asked(hooks: Hooks) -> None:
    assert worker.job_function("webhooks.retention") is retention.run
    database = hooks.gateway.runtime.database
    await _insert(database, [("old", HANDLED, NOW - 31 * DAY, NOW - 31 * DAY)])
    stop = asyncio.Event()
    job = asyncio.create_task(retention.run(hooks.gateway.runtime, stop))
    for _ in range(250):
        if (await _bodies(database))["old"] == PRUNED_BODY:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(job, timeout=5)
    assert (await _bodies(database))["old"] == PRUNED_BODY
