from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from sqlalchemy import text

from gateway.relay.outbound import retry_after_seconds
from tests.conftest import Gateway
from tests.relay.conftest import FAST_SCHEDULE, create_endpoint, enqueue, eventually, sending
from tests.relay.receiver import Answer, Receiver


async def message(gw: Gateway, message_id: str) -> dict[str, Any]:
    response = await gw.client.get(
        f"/gateway/messages/{message_id}", headers=await gw.headers("billing:read")
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["message"]
    return found


async def delivery_status(gw: Gateway, message_id: str) -> str:
    return str((await message(gw, message_id))["deliveries"][0]["status"])


async def test_failed_attempts_are_retried_until_the_subscriber_accepts(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    receiver.answer = lambda _, n: (500, {}, b"boom") if n < 2 else (204, {}, b"")
    await create_endpoint(relay_gateway, filter_types=["*"])
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: receiver.received)
        await eventually(lambda: _is(relay_gateway, "m1", "delivered"))
    found = await message(relay_gateway, "m1")
    assert found["status"] == "delivered"
    assert [(a["attempt"], a["outcome"], a["status"]) for a in found["attempts"]] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "succeeded", 204),
    ]
    assert found["attempts"][0]["response_body"] == "boom"
    assert found["attempts"][0]["error"] == "HTTP 500"
    assert all(a["latency_ms"] >= 0 for a in found["attempts"])
    assert receiver.counts == {"m1": 1}


async def _is(gw: Gateway, message_id: str, status: str) -> bool:
    return await delivery_status(gw, message_id) == status


async def test_every_attempt_is_recorded_with_the_first_2_kb_of_the_answer(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    receiver.answer = lambda _, n: (500, {}, b"x" * 5000)
    await create_endpoint(relay_gateway, filter_types=["*"])
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: _is(relay_gateway, "m1", "failed"))
    found = await message(relay_gateway, "m1")
    assert len(found["attempts"]) == 1 + len(FAST_SCHEDULE)
    assert {len(a["response_body"]) for a in found["attempts"]} == {2048}
    assert found["deliveries"][0]["last_status"] == 500
    assert found["deliveries"][0]["attempts"] == 1 + len(FAST_SCHEDULE)


async def test_a_redirect_is_a_failure_and_is_not_followed(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    receiver.answer = lambda path, n: (
        (301, {"location": "/elsewhere"}, b"") if path == "/hook" else (204, {}, b"")
    )
    await create_endpoint(relay_gateway, filter_types=["*"])
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: _is(relay_gateway, "m1", "failed"))
    assert receiver.received == []
    assert receiver.requests["/elsewhere"] == 0
    assert {a["status"] for a in (await message(relay_gateway, "m1"))["attempts"]} == {301}


async def test_unreachable_subscriber_errors_are_recorded(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    receiver.down = True
    await create_endpoint(relay_gateway, filter_types=["*"])
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: _is(relay_gateway, "m1", "failed"))
    attempts = (await message(relay_gateway, "m1"))["attempts"]
    assert attempts[0]["status"] is None
    assert attempts[0]["error"].startswith("ConnectError")


def _gone(path: str, n: int) -> Answer:
    return (410, {}, b"gone") if path == "/gone" else (204, {}, b"")


async def test_410_disables_the_endpoint_and_raises_a_gateway_message(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    receiver.answer = _gone
    gone = (await create_endpoint(relay_gateway, "/gone", ["invoice.*"]))["endpoint"]
    await create_endpoint(relay_gateway, "/ops", ["gateway.*"])
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: receiver.at("/ops"))
        # A message enqueued after the disable does not go to the disabled endpoint.
        await enqueue(relay_gateway, "m2", "invoice.created")
    [note] = receiver.at("/ops")
    envelope = note.envelope
    assert envelope["type"] == "gateway.endpoint.disabled"
    assert envelope["source"] == "gateway"
    assert envelope["data"]["endpoint_id"] == gone["id"]
    assert "410" in envelope["data"]["reason"]
    admin = await relay_gateway.headers("admin")
    found = await relay_gateway.client.get(f"/gateway/endpoints/{gone['id']}", headers=admin)
    state = found.json()
    assert state["endpoint"]["enabled"] is False
    assert "410" in state["endpoint"]["disabled_reason"]
    assert (await message(relay_gateway, "m1"))["attempts"][0]["status"] == 410
    assert (await message(relay_gateway, "m2"))["status"] == "no_endpoints"
    assert receiver.requests["/gone"] == 1
    audit = await relay_gateway.client.get(
        "/gateway/audit", params={"action": "relay.endpoint.disable"}, headers=admin
    )
    assert audit.status_code == 200
    assert [e["target"] for e in audit.json()["entries"]] == [gone["id"]]


async def test_an_endpoint_failing_everything_for_too_long_is_disabled(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    receiver.answer = lambda path, n: (500, {}, b"") if path == "/flaky" else (204, {}, b"")
    flaky = (await create_endpoint(relay_gateway, "/flaky", ["invoice.*"]))["endpoint"]
    await create_endpoint(relay_gateway, "/ops", ["gateway.endpoint.disabled"])
    overrides = {"relay_retry_schedule": (0.05,) * 200, "relay_disable_after_seconds": 0.5}
    async with sending(relay_gateway, receiver, **overrides):
        for i in range(3):
            await enqueue(relay_gateway, f"m{i}", "invoice.created")
        await eventually(lambda: receiver.at("/ops"))
    assert receiver.at("/ops")[0].envelope["data"]["endpoint_id"] == flaky["id"]
    for i in range(3):
        found = await message(relay_gateway, f"m{i}")
        assert found["deliveries"][0]["status"] == "failed"
        assert found["deliveries"][0]["last_error"] in ("endpoint disabled", "HTTP 500")


async def test_a_success_resets_the_failure_clock(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    receiver.answer = lambda _, n: (500, {}, b"") if n % 2 == 0 else (204, {}, b"")
    ep = (await create_endpoint(relay_gateway, filter_types=["*"]))["endpoint"]
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: receiver.received)
    admin = await relay_gateway.headers("admin")
    state = (await relay_gateway.client.get(f"/gateway/endpoints/{ep['id']}", headers=admin)).json()
    assert state["endpoint"]["failing_since"] is None
    assert state["endpoint"]["enabled"] is True


async def test_retry_after_on_429_and_503_pushes_the_next_attempt_back(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    receiver.answer = lambda path, n: (
        (429, {"retry-after": "60"}, b"") if path == "/429" else (503, {"retry-after": later}, b"")
    )
    await create_endpoint(relay_gateway, "/429", ["*"])
    await create_endpoint(relay_gateway, "/503", ["*"])
    started = time.time()
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: receiver.requests["/429"] and receiver.requests["/503"])
        await eventually(lambda: _attempted_twice(relay_gateway))
    async with relay_gateway.runtime.database.engine.connect() as conn:
        rows = dict(
            (
                await conn.execute(
                    text(
                        "SELECT e.url, d.next_attempt_at FROM relay_deliveries d "
                        "JOIN relay_endpoints e ON e.id = d.endpoint_id"
                    )
                )
            ).all()
        )
    assert rows["http://receiver.test/429"] >= started + 59
    assert rows["http://receiver.test/503"] >= started + 110
    assert receiver.requests["/429"] == 1
    assert receiver.requests["/503"] == 1


async def _attempted_twice(gw: Gateway) -> bool:
    return len((await message(gw, "m1"))["attempts"]) == 2


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = time.time()
    assert retry_after_seconds("30", now) == 30.0
    assert retry_after_seconds(None, now) is None
    assert retry_after_seconds("soon", now) is None
    when = format_datetime(datetime.fromtimestamp(now + 90, UTC), usegmt=True)
    assert 88 <= (retry_after_seconds(when, now) or 0) <= 91
    assert retry_after_seconds("99999999", now) == 24 * 3600.0


async def test_a_binary_answer_with_nul_bytes_is_recorded_not_fatal(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    receiver.answer = lambda _, n: (500, {}, b"\x00\xffbin") if n == 0 else (204, {}, b"")
    await create_endpoint(relay_gateway, filter_types=["*"])
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: _is(relay_gateway, "m1", "delivered"))
    first = (await message(relay_gateway, "m1"))["attempts"][0]
    assert first["response_body"] == "\ufffd\ufffdbin"
