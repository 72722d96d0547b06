"""The one wake-up primitive: ``Database.wake(channel)`` and the jobs' ``idle``."""

from __future__ import annotations

import asyncio
import time

from gateway.db import Database
from gateway.jobs import idle


async def test_one_wake_up_per_channel_and_database() -> None:
    first, second = Database("sqlite:///:memory:"), Database("sqlite:///:memory:")
    try:
        assert first.wake("relay.due") is first.wake("relay.due")
        assert first.wake("relay.due") is not first.wake("usage.pending")
        assert first.wake("relay.due") is not second.wake("relay.due")
    finally:
        await first.dispose()
        await second.dispose()


async def test_counts_add_up_until_taken_and_taking_clears() -> None:
    wake = Database("sqlite:///:memory:").wake("relay.due")
    assert not wake.is_set()
    wake.set(3)
    wake.set()  # "look now": no count
    wake.set(2)
    assert wake.is_set()
    assert wake.take() == 5
    assert not wake.is_set()
    assert wake.take() == 0


async def test_a_set_wakes_an_idle_job_at_once_and_stop_ends_its_wait() -> None:
    database = Database("sqlite:///:memory:")
    wake, stop = database.wake("usage.pending"), asyncio.Event()
    started = time.monotonic()
    waiting = asyncio.create_task(idle(stop, wake, 30.0))
    await asyncio.sleep(0.01)
    wake.set()
    await asyncio.wait_for(waiting, 1.0)
    wake.take()
    waiting = asyncio.create_task(idle(stop, wake, 30.0))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(waiting, 1.0)
    assert time.monotonic() - started < 1.0


async def test_a_wake_up_set_before_the_wait_is_not_lost() -> None:
    # A producer that commits between the job's take and its wait: the wait returns at once.
    wake = Database("sqlite:///:memory:").wake("webhooks.arrived")
    wake.take()
    wake.set()
    await asyncio.wait_for(idle(asyncio.Event(), wake, 30.0), 0.5)
