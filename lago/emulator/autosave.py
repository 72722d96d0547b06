"""``Autosave``: the emulator app, its state written to a file after state-changing requests.

A request other than GET/HEAD/OPTIONS marks the state changed; ``run`` writes it at most every
``interval`` seconds while it is changed, and ``flush`` (at shutdown) writes what is left. A
clean stop loses nothing; a crash loses what changed in the last ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .persistence import save
from .state import EmulatorState

READS = frozenset({"GET", "HEAD", "OPTIONS"})


class Autosave:
    """ASGI wrapper of an emulator app over ``state``, kept in ``path``."""

    def __init__(
        self, app: ASGIApp, state: EmulatorState, path: Path, interval: float = 0.5
    ) -> None:
        self.app = app
        self.lago = state
        self.path = path
        self.interval = interval
        self.changed = False

    @property
    def state(self) -> Any:
        """The wrapped app's ``state`` (``state.lago`` is the emulator's state)."""
        return getattr(self.app, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope.get("method") not in READS:
                self.changed = True

    def touch(self) -> None:
        """Mark the state changed from outside a request (webhook deliveries)."""
        self.changed = True

    def flush(self) -> None:
        """Write the state now if it changed since the last write."""
        if self.changed:
            self.changed = False
            try:
                save(self.lago, self.path)
            except BaseException:
                self.changed = True
                raise

    async def run(self) -> None:
        """Write changes every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            with contextlib.suppress(OSError):  # kept changed: the next tick tries again
                self.flush()
