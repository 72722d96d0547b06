"""What the background jobs' loops share."""

from __future__ import annotations

import asyncio


async def idle(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Sleep until ``stop`` or ``wake`` is set, or ``seconds`` have passed.

    The caller clears ``wake`` before it last looks for work, so a wake-up that comes in
    between is not lost.
    """
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
