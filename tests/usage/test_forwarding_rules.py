"""The forwarder under Lago's real batch rules: one transaction id on two subscriptions, every
way a 422 arises, answers that name no event, an event Lago fails on, and the byte limit."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from gateway.usage import forwarder as forwarder_module
from gateway.usage.forwarder import STRIKES_TO_DEAD, Forwarder
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from lago.emulator import events as lago_events
from tests.conftest import LAGO_KEY, Gateway, make_settings, start_gateway
from tests.usage.servers import METRIC, seed_through

SUBS = ["sub_1", "sub_2"]


def _event(tx: str, sub: str = "sub_1", **fields: Any) -> dict[str, Any]:
    return {
        "transaction_id": tx,
        "external_subscription_id": sub,
        "code": METRIC,
        "timestamp": 1756684800,
        **fields,
    }


class Interposed(httpx.AsyncBaseTransport):
    """The emulator behind a hook that may answer a request itself (a proxy, a crash)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.hook: Callable[[httpx.Request, bytes], httpx.Response | None] | None = None
        self.batches: list[list[dict[str, Any]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if request.url.path.endswith("/events/batch"):
            self.batches.append(orjson.loads(body)["events"])
        if self.hook is not None and (answer := self.hook(request, body)) is not None:
            return answer
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def wire(emulator: EmulatorState) -> Interposed:
    app = create_emulator(emulator, api_key=LAGO_KEY, validate=True)
    return Interposed(httpx.ASGITransport(app=app))


async def _gateway(
    database_url: str, emulator: EmulatorState, wire: Interposed, **settings: Any
) -> AsyncIterator[Gateway]:
    gateway, manager = await start_gateway(
        make_settings(database_url, **settings), emulator, lago_transport=wire
    )
    try:
        await seed_through(gateway.runtime.lago, SUBS)
        wire.batches.clear()
        yield gateway
    finally:
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == []


@pytest.fixture
async def gw(
    database_url: str, emulator: EmulatorState, wire: Interposed
) -> AsyncIterator[Gateway]:
    async for gateway in _gateway(database_url, emulator, wire):
        yield gateway


async def _accept(gw: Gateway, events: list[dict[str, Any]]) -> None:
    headers = await gw.headers("events:write")
    for start in range(0, len(events), 100):
        response = await gw.client.post(
            "/api/v1/events/batch", json={"events": events[start : start + 100]}, headers=headers
        )
        assert response.status_code == 200, response.text


async def _forward_all(forwarder: Forwarder) -> None:
    while await forwarder.forward_due():
        pass


async def _statuses(gw: Gateway) -> dict[tuple[str, str], str]:
    async with gw.runtime.database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT external_subscription_id, transaction_id, status FROM usage_events")
        )
        return {(r[0], r[1]): r[2] for r in rows.all()}


async def _last_errors(gw: Gateway) -> dict[str, str | None]:
    async with gw.runtime.database.engine.connect() as conn:
        rows = await conn.execute(text("SELECT transaction_id, last_error FROM usage_events"))
        return {r[0]: r[1] for r in rows.all()}


def _layout(name: str, ids: int) -> list[dict[str, Any]]:
    """200 ids on two subscriptions each: side by side, shuffled, or one 50 behind."""
    pairs = [(f"gen-{i}", sub) for i in range(ids) for sub in SUBS]
    if name == "shuffled":
        random.Random(7).shuffle(pairs)
    elif name == "lagging":
        first = [(f"gen-{i}", "sub_1") for i in range(ids)]
        second = [(f"gen-{i}", "sub_2") for i in range(ids)]
        pairs = first[:50] + [p for pair in zip(first[50:], second, strict=False) for p in pair]
        pairs += second[ids - 50 :]
    return [_event(tx, sub) for tx, sub in pairs]


@pytest.mark.parametrize("layout", ["adjacent", "shuffled", "lagging"])
async def test_one_transaction_id_on_two_subscriptions_reaches_lago_for_both(
    gw: Gateway, wire: Interposed, layout: str
) -> None:
    events = _layout(layout, 200)
    assert len({(e["external_subscription_id"], e["transaction_id"]) for e in events}) == 400
    await _accept(gw, events)
    await _forward_all(Forwarder(gw.runtime, gw.parts.lookups))
    assert len(gw.emulator.events) == 400, "events marked forwarded that Lago does not hold"
    assert set((await _statuses(gw)).values()) == {"forwarded"}
    for batch in wire.batches:
        ids = [e["transaction_id"] for e in batch]
        assert len(ids) == len(set(ids)), "one transaction id twice in one request"


async def test_an_id_lago_holds_on_one_subscription_does_not_hide_its_twin_on_another(
    gw: Gateway,
) -> None:
    await _accept(gw, [_event("gen-1", "sub_1"), _event("gen-1", "sub_2"), _event("gen-2")])
    # (sub_1, gen-1) reached Lago before (an answer lost); (sub_2, gen-1) is new.
    await gw.runtime.lago.call("POST", "/events", json={"event": _event("gen-1", "sub_1")})
    await _forward_all(Forwarder(gw.runtime, gw.parts.lookups))
    assert set(gw.emulator.events) == {("sub_1", "gen-1"), ("sub_2", "gen-1"), ("sub_1", "gen-2")}
    assert set((await _statuses(gw)).values()) == {"forwarded"}


async def test_a_duplicate_answer_in_a_batch_that_repeats_an_id_is_confirmed_alone(
    gw: Gateway, wire: Interposed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a batch ever hold one id twice, Lago's value_already_exist proves nothing: the
    event is resent alone, and only that answer decides."""
    monkeypatch.setattr(forwarder_module, "pack", lambda claimed, count, size: [list(claimed)])
    await _accept(gw, [_event("gen-1", "sub_1"), _event("gen-1", "sub_2"), _event("gen-2")])
    await _forward_all(Forwarder(gw.runtime, gw.parts.lookups))
    assert set(gw.emulator.events) == {("sub_1", "gen-1"), ("sub_2", "gen-1"), ("sub_1", "gen-2")}
    assert set((await _statuses(gw)).values()) == {"forwarded"}
    assert [len(batch) for batch in wire.batches] == [3, 1, 2]  # refused, alone, the rest


async def test_field_errors_are_answered_before_duplicates_and_both_end_right(
    gw: Gateway,
) -> None:
    """Lago validates every event before it looks for duplicates: a batch with a bad event
    and one Lago holds names only the bad one; the held one is settled on the resend."""
    await _accept(gw, [_event("held-1"), _event("new-1")])
    await gw.runtime.lago.call("POST", "/events", json={"event": _event("held-1")})
    await _insert_raw(gw, "bad-1", _event("bad-1", timestamp="not a time"))
    await _forward_all(Forwarder(gw.runtime, gw.parts.lookups))
    statuses = {tx: status for (_, tx), status in (await _statuses(gw)).items()}
    assert statuses == {"held-1": "forwarded", "new-1": "forwarded", "bad-1": "dead"}
    assert orjson.loads((await _last_errors(gw))["bad-1"] or "") == {
        "timestamp": ["invalid_format"]
    }
    assert set(gw.emulator.events) == {("sub_1", "held-1"), ("sub_1", "new-1")}


async def _insert_raw(gw: Gateway, tx: str, payload: dict[str, Any]) -> None:
    """An outbox row the gateway's own checks would have refused."""
    async with gw.runtime.database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO usage_events (external_subscription_id, transaction_id, code, "
                "payload, fingerprint, status, attempts, accepted_at, next_attempt_at, "
                "needs_check, accepted_by) VALUES ('sub_1', :tx, :code, :payload, 'f', "
                "'pending', 0, 0, 0, 0, 'test')"
            ),
            {"tx": tx, "code": METRIC, "payload": orjson.dumps(payload).decode()},
        )


def _answer(status: int, body: bytes, content_type: str = "text/html") -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": content_type})


def _lago_422(details: Any) -> httpx.Response:
    body = {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors"}
    return _answer(422, orjson.dumps({**body, "error_details": details}), "application/json")


async def test_a_string_reason_at_an_index_dead_letters_that_event(
    gw: Gateway, wire: Interposed
) -> None:
    """Lago puts an expression's failure message at the event's index as a bare string."""

    def crash(request: httpx.Request, body: bytes) -> httpx.Response | None:
        events = orjson.loads(body).get("events", []) if body else []
        for index, event in enumerate(events):
            if event["transaction_id"] == "expr-1":
                return _lago_422({str(index): "undefined variable: seconds"})
        return None

    wire.hook = crash
    await _accept(gw, [_event("ok-1"), _event("expr-1"), _event("ok-2")])
    await _forward_all(Forwarder(gw.runtime, gw.parts.lookups))
    statuses = {tx: status for (_, tx), status in (await _statuses(gw)).items()}
    assert statuses == {"ok-1": "forwarded", "expr-1": "dead", "ok-2": "forwarded"}
    assert (await _last_errors(gw))["expr-1"] == '"undefined variable: seconds"'


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda: _answer(413, b"<html>413 Request Entity Too Large</html>"), id="413"),
        pytest.param(lambda: _answer(400, b"Bad Request"), id="400"),
        pytest.param(lambda: _lago_422({"base": ["invalid_event"]}), id="422-without-index"),
    ],
)
async def test_an_answer_naming_no_event_is_split_until_the_culprit_stands_alone(
    gw: Gateway, wire: Interposed, answer: Callable[[], httpx.Response]
) -> None:
    def culprit(request: httpx.Request, body: bytes) -> httpx.Response | None:
        return answer() if b'"culprit"' in body else None

    wire.hook = culprit
    events = [_event(f"ok-{i}") for i in range(99)]
    events.insert(37, _event("culprit"))
    await _accept(gw, events)
    # One round settles all.
    assert await Forwarder(gw.runtime, gw.parts.lookups).forward_due() == 100
    statuses = {tx: status for (_, tx), status in (await _statuses(gw)).items()}
    assert statuses.pop("culprit") == "dead"
    assert set(statuses.values()) == {"forwarded"} and len(statuses) == 99
    assert len(gw.emulator.events) == 99
    reason = (await _last_errors(gw))["culprit"] or ""
    expected = answer()
    if expected.status_code == 422:  # alone, what Lago names is about this event
        assert orjson.loads(reason) == {"base": ["invalid_event"]}
    else:
        assert reason == f"Lago answered {expected.status_code}"
    assert len(wire.batches) <= 1 + 2 * 7  # a bisection: two requests per level


async def test_lagos_too_many_events_splits_the_batch_and_loses_nothing(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Lago run with LAGO_EVENTS_BATCH_MAX_LENGTH below the gateway's batch size."""
    monkeypatch.setattr(lago_events, "MAX_LENGTH", 30)
    await _accept(gw, [_event(f"m-{i}") for i in range(100)])
    await _forward_all(Forwarder(gw.runtime, gw.parts.lookups))
    assert set((await _statuses(gw)).values()) == {"forwarded"}
    assert len(gw.emulator.events) == 100


async def test_an_event_lago_fails_on_is_dead_lettered_and_its_batch_mates_delivered(
    gw: Gateway, wire: Interposed
) -> None:
    """Lago answers 500 to every request holding one event, and takes all others."""

    def crash(request: httpx.Request, body: bytes) -> httpx.Response | None:
        return _answer(500, b"Internal Server Error") if b'"poison"' in body else None

    wire.hook = crash
    events = [_event(f"ok-{i}") for i in range(99)]
    events.insert(60, _event("poison"))
    await _accept(gw, events)
    forwarder = Forwarder(gw.runtime, gw.parts.lookups)
    assert await forwarder.forward_due() == 100
    statuses = {tx: status for (_, tx), status in (await _statuses(gw)).items()}
    assert statuses.pop("poison") == "pending"  # one strike: it may have been a blip
    assert set(statuses.values()) == {"forwarded"}
    assert forwarder.health.well  # its batch-mates showed that Lago works
    for _ in range(STRIKES_TO_DEAD * 3):
        await asyncio.wait_for(forwarder.health.wait_well(asyncio.Event()), 10)
        async with gw.runtime.database.engine.begin() as conn:
            await conn.execute(text("UPDATE usage_events SET next_attempt_at = 0"))
        await forwarder.forward_due()
        if (await _statuses(gw))[("sub_1", "poison")] == "dead":
            break
    assert (await _statuses(gw))[("sub_1", "poison")] == "dead"
    assert (await _last_errors(gw))["poison"] == (
        f"Lago answered 500 (sent alone, {STRIKES_TO_DEAD} times)"
    )
    assert len(gw.emulator.events) == 99
    await forwarder.health.close()


async def test_requests_are_cut_under_the_byte_limit_so_a_proxy_never_refuses_them(
    database_url: str, emulator: EmulatorState, wire: Interposed
) -> None:
    limit = 4096
    emulator.faults.max_body_bytes = limit  # the proxy in front of Lago: 413 above it
    async for gw in _gateway(database_url, emulator, wire, forward_batch_max_bytes=limit):
        padding = "x" * 400
        await _accept(gw, [_event(f"b-{i}", properties={"note": padding}) for i in range(60)])
        await _forward_all(Forwarder(gw.runtime, gw.parts.lookups))
        assert set((await _statuses(gw)).values()) == {"forwarded"}
        assert emulator.faults_injected["body_too_large"] == 0
        assert all(len(orjson.dumps({"events": b})) <= limit for b in wire.batches)
        assert len(wire.batches) >= 60 * 450 // limit


async def test_an_event_too_large_for_the_proxy_alone_is_dead_and_its_mates_delivered(
    gw: Gateway, wire: Interposed
) -> None:
    gw.emulator.faults.max_body_bytes = 4096
    await _accept(gw, [_event(f"s-{i}") for i in range(40)])
    await _insert_raw(gw, "huge-1", _event("huge-1", properties={"note": "x" * 6000}))
    await _forward_all(Forwarder(gw.runtime, gw.parts.lookups))
    statuses = {tx: status for (_, tx), status in (await _statuses(gw)).items()}
    assert statuses.pop("huge-1") == "dead"
    assert set(statuses.values()) == {"forwarded"} and len(gw.emulator.events) == 40
    assert (await _last_errors(gw))["huge-1"] == "Lago answered 413"
