"""Whether Lago as a whole is taking events: one state for all of a process's forwarding loops.

A failure that says "Lago is unwell" (5xx, 429, a timeout, a refused connection) pauses every
loop at once, instead of each batch backing off on its own: events keep their place in the
queue (their next attempt is not pushed out) and, while paused, Lago is probed on a short
schedule. The first probe or send that succeeds ends the pause, and everything that waited
is due at once. A ``Retry-After`` that Lago (or a proxy) gives is honoured, up to a cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from gateway.logging import get_logger
from gateway.usage import metrics

log = get_logger(__name__)

Probe = Callable[[], Awaitable[bool]]


class LagoHealth:
    """Paused or not; while paused, one task probes Lago until it answers."""

    def __init__(
        self,
        probe: Probe,
        *,
        first_interval: float = 0.25,
        last_interval: float = 2.0,
        max_wait: float = 300.0,
    ) -> None:
        self._probe = probe
        self._first = first_interval
        self._last = max(last_interval, first_interval)
        self._max_wait = max_wait
        self._well = asyncio.Event()
        self._well.set()
        self._not_before = 0.0
        self._prober: asyncio.Task[None] | None = None
        self.reason: str | None = None
        self.unwell_since: float | None = None
        self.probes = 0

    @property
    def well(self) -> bool:
        return self._well.is_set()

    @property
    def resume_not_before(self) -> float:
        """Monotonic time before which no probe is sent (a Retry-After)."""
        return self._not_before

    def failed(self, reason: str, retry_after: float | None = None) -> None:
        """Lago as a whole did not take a request: pause, and probe until it does."""
        if retry_after:
            wait = min(retry_after, self._max_wait)
            self._not_before = max(self._not_before, time.monotonic() + wait)
        if not self.well:
            return
        self._well.clear()
        self.reason = reason
        self.unwell_since = time.monotonic()
        metrics.LAGO_UNWELL.set(1)
        log.warning("usage.forward.paused", reason=reason)
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe_until_well())

    def succeeded(self) -> None:
        """Lago took a request: whatever waited for it is due at once."""
        if self.well:
            return
        paused = time.monotonic() - (self.unwell_since or time.monotonic())
        self._well.set()
        self._not_before = 0.0
        self.reason = None
        self.unwell_since = None
        metrics.LAGO_UNWELL.set(0)
        log.info("usage.forward.resumed", paused_s=round(paused, 2), probes=self.probes)

    async def wait_well(self, stop: asyncio.Event) -> None:
        """Return when Lago is well (at once if it is) or ``stop`` is set."""
        if self.well:
            return
        waiters = [asyncio.ensure_future(self._well.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober

    async def _probe_until_well(self) -> None:
        interval = self._first
        while not self.well:
            delay = max(interval, self._not_before - time.monotonic())
            await asyncio.sleep(delay)
            if self.well:
                return
            self.probes += 1
            metrics.LAGO_PROBES.inc()
            try:
                answered = await self._probe()
            except Exception as exc:  # a probe that breaks must not end the probing
                log.warning("usage.forward.probe_failed", error=type(exc).__name__)
                answered = False
            if answered and time.monotonic() >= self._not_before:
                self.succeeded()
                return
            interval = min(self._last, interval * 2)
