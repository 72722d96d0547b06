from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.relay.sender import Sender
from gateway.relay.service import DUE, enqueue_message
from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway
from tests.relay.receiver import Receiver

RECEIVER = "http://receiver.test"
FAST_SCHEDULE = (0.05, 0.05, 0.05)


def relay_settings(database_url: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "relay_allow_private": True,
        "relay_retry_schedule": FAST_SCHEDULE,
        "relay_lease_seconds": 30.0,
        "relay_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return make_settings(database_url, **values)


@pytest.fixture
async def relay_gateway(database_url: str, emulator: EmulatorState) -> AsyncIterator[Gateway]:
    """The gateway with private subscriber URLs allowed and a fast retry schedule; no workers."""
    gw, manager = await start_gateway(relay_settings(database_url), emulator)
    try:
        yield gw
    finally:
        await gw.client.aclose()
        await manager.__aexit__(None, None, None)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


async def create_endpoint(
    gw: Gateway, path: str = "/hook", filter_types: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """Register an endpoint through the API; returns the answer (endpoint + secret)."""
    body: dict[str, Any] = {"url": RECEIVER + path, **extra}
    if filter_types is not None:
        body["filter_types"] = filter_types
    response = await gw.client.post(
        "/gateway/endpoints", json=body, headers=await gw.headers("admin")
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def enqueue(
    gw: Gateway,
    message_id: str,
    type_: str,
    data: dict[str, Any] | None = None,
    source: str = "lago",
    *,
    announce: bool = True,
) -> bool:
    """Enqueue in a transaction of its own; then, as the inbox does, wake this process's
    senders (``announce=False``: as another process would, leaving it to NOTIFY or the poll)."""
    database = gw.runtime.database
    async with database.engine.begin() as conn:
        new = await enqueue_message(
            conn, message_id=message_id, type=type_, source=source, data=data or {"n": message_id}
        )
    if announce:
        database.wake(DUE).set()
    return new


@contextlib.asynccontextmanager
async def sending(gw: Gateway, receiver: Receiver, **overrides: Any) -> AsyncIterator[Sender]:
    """A sender on the gateway's database delivering into ``receiver``, stopped on exit."""
    settings = gw.runtime.settings
    if overrides:
        settings = settings.model_copy(update=overrides)
    sender = Sender(settings, gw.runtime.database, transport=receiver.transport())
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        yield sender
    finally:
        stop.set()
        await task


async def eventually(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]], seconds: float = 15.0
) -> None:
    """Wait until ``check()`` is truthy (bounded: fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
