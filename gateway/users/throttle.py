"""Sign-in attempts per client address, in this process: a sliding window of failures.

The account lock (``service.MAX_FAILURES``) is shared by every process through the
database; this window also slows a client trying many usernames, which no account lock sees.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 300.0
MAX_FAILURES_PER_CLIENT = 20
MAX_CLIENTS = 10_000


class SignInThrottle:
    """Failures per client within ``window`` seconds; ``retry_after`` says when to come back."""

    def __init__(
        self,
        limit: int = MAX_FAILURES_PER_CLIENT,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again; 0 when it may now."""
        times = self._recent(client)
        if len(times) < self.limit:
            return 0
        return max(1, int(times[0] + self.window - self.clock()) + 1)

    def failed(self, client: str) -> None:
        """Count one failed attempt by ``client``."""
        if client not in self._failures and len(self._failures) >= MAX_CLIENTS:
            self._forget_idle()
        self._recent(client).append(self.clock())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        horizon = self.clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        return times

    def _forget_idle(self) -> None:
        horizon = self.clock() - self.window
        for client in [c for c, t in self._failures.items() if not t or t[-1] <= horizon]:
            del self._failures[client]
        if len(self._failures) >= MAX_CLIENTS:
            self._failures.pop(next(iter(self._failures)))
