"""The idempotency promise, field by field: a resend is identical or it is refused.

An event is keyed by (external_subscription_id, transaction_id). A resend of a stored key is
an idempotent success only when everything Lago bills on is unchanged; any change to the
code, the timestamp, a property or the precise amount is a 422 ``value_already_exist`` that
stores nothing. Each case runs three ways: one event then a resend, a batch then a resend in
a batch, and both copies in one batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway
from tests.usage.servers import METRIC, seed_through

CLASH = {"transaction_id": ["value_already_exist"]}
MODES = ["single", "batch", "same_batch"]


@pytest.fixture
async def gw(database_url: str, emulator: EmulatorState) -> AsyncIterator[Gateway]:
    """Lago knows sub_1, sub_2 (customer cust_sub_1, cust_sub_2) and both catalog metrics."""
    gateway, manager = await start_gateway(make_settings(database_url), emulator)
    try:
        await seed_through(gateway.runtime.lago, ["sub_1", "sub_2"])
        video = {
            "name": "Video",
            "code": "video_generation",
            "aggregation_type": "sum_agg",
            "field_name": "seconds",
        }
        await gateway.runtime.lago.call(
            "POST", "/billable_metrics", json={"billable_metric": video}
        )
        yield gateway
    finally:
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == []


def _original() -> dict[str, Any]:
    return {
        "transaction_id": "tx_idem",
        "external_subscription_id": "sub_1",
        "code": METRIC,
        "timestamp": 1756684800,
        "properties": {"quality": "hd", "seconds": 5},
        "precise_total_amount_cents": "12.5",
    }


def _changed(**fields: Any) -> dict[str, Any]:
    event = {**_original(), **fields}
    return {name: value for name, value in event.items() if value is not None}


async def _send(gw: Gateway, events: list[dict[str, Any]], *, batch: bool) -> httpx.Response:
    headers = await gw.headers("events:write")
    if batch:
        return await gw.client.post(
            "/api/v1/events/batch", json={"events": events}, headers=headers
        )
    [event] = events
    return await gw.client.post("/api/v1/events", json={"event": event}, headers=headers)


async def _stored_payloads(gw: Gateway) -> list[tuple[str, str, str]]:
    async with gw.runtime.database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT external_subscription_id, transaction_id, payload FROM usage_events")
        )
        return sorted((r[0], r[1], r[2]) for r in rows)


async def _resend(gw: Gateway, mode: str, resent: dict[str, Any]) -> httpx.Response:
    """Send the original, then ``resent``, as ``mode`` says; the answer to ``resent``."""
    if mode == "same_batch":
        return await _send(gw, [_original(), resent], batch=True)
    first = await _send(gw, [_original()], batch=mode == "batch")
    assert first.status_code == 200, first.text
    return await _send(gw, [resent], batch=mode == "batch")


def _clash(mode: str) -> dict[str, Any]:
    return {"single": CLASH, "batch": {"0": CLASH}, "same_batch": {"1": CLASH}}[mode]


CHANGES = {
    "code": {"code": "video_generation"},
    "timestamp": {"timestamp": 1756684801},
    "timestamp_dropped": {"timestamp": None},  # the receive time would be stamped instead
    "property_value": {"properties": {"quality": "sd", "seconds": 5}},
    "property_added": {"properties": {"quality": "hd", "seconds": 5, "region": "eu"}},
    "property_removed": {"properties": {"quality": "hd"}},
    "properties_dropped": {"properties": None},
    "precise_total_amount_cents": {"precise_total_amount_cents": "13"},
    "precise_total_amount_cents_dropped": {"precise_total_amount_cents": None},
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_resend_that_changes_a_billed_field_is_refused_and_stores_nothing(
    gw: Gateway, change: str, mode: str
) -> None:
    before: list[tuple[str, str, str]] = []
    if mode != "same_batch":
        first = await _send(gw, [_original()], batch=mode == "batch")
        assert first.status_code == 200, first.text
        before = await _stored_payloads(gw)
        assert len(before) == 1
        resent = await _send(gw, [_changed(**CHANGES[change])], batch=mode == "batch")
    else:
        resent = await _send(gw, [_original(), _changed(**CHANGES[change])], batch=True)

    assert resent.status_code == 422, resent.text
    assert resent.json()["error_details"] == _clash(mode)
    assert await _stored_payloads(gw) == before  # unchanged: no second row, no new payload


@pytest.mark.parametrize("mode", MODES)
async def test_an_identical_resend_is_a_success_that_stores_one_event(
    gw: Gateway, mode: str
) -> None:
    reordered = _changed(properties={"seconds": 5, "quality": "hd"})  # key order is not content
    via_customer = _changed(external_subscription_id=None, external_customer_id="cust_sub_1")
    for resent in (_original(), reordered, via_customer):
        answer = await _resend(gw, mode, resent)
        assert answer.status_code == 200, answer.text
    assert [(sub, tx) for sub, tx, _ in await _stored_payloads(gw)] == [("sub_1", "tx_idem")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("key", "value"), [("external_subscription_id", "sub_2"), ("transaction_id", "tx_other")]
)
async def test_a_resend_under_another_key_is_another_event(
    gw: Gateway, mode: str, key: str, value: str
) -> None:
    """The key fields are not compared but looked up: changing one makes a new event."""
    answer = await _resend(gw, mode, _changed(**{key: value}))
    assert answer.status_code == 200, answer.text
    stored = await _stored_payloads(gw)
    assert len(stored) == 2
    assert {(sub, tx) for sub, tx, _ in stored} == {
        ("sub_1", "tx_idem"),
        ("sub_2", "tx_idem") if key == "external_subscription_id" else ("sub_1", "tx_other"),
    }
