"""Fault injection: which requests fail, decided before the handler runs.

Besides Lago's own answers (429, 500, an outage's 503 with ``Retry-After``), faults copy
what sits in front of Lago: a proxy answering 502/503/504 in HTML without ``Retry-After``,
its 413 for a body over ``client_max_body_size``, connections refused or dropped unanswered,
and requests that never get an answer.
"""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass, field, fields
from typing import Any


class Fault(enum.Enum):
    """What happens to one request."""

    NONE = "none"
    OUTAGE = "outage"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    ERROR = "error"
    FAIL_AFTER_COMMIT = "fail_after_commit"
    PROXY_ERROR = "proxy_error"
    RESET = "reset"
    REFUSE = "refuse"


class ConnectionFault(Exception):
    """Raised by the emulator in-process for a connection that fails (``Fault.RESET`` or
    ``Fault.REFUSE``); ``FaultyTransport`` turns it into httpx's own error."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.value)
        self.fault = fault


# What an outage looks like from the client: Lago's 503, a proxy's error page, refused or
# dropped connections, or requests left unanswered.
OUTAGE_KINDS = {
    "lago": Fault.OUTAGE,
    "proxy": Fault.PROXY_ERROR,
    "refuse": Fault.REFUSE,
    "reset": Fault.RESET,
    "hang": Fault.TIMEOUT,
}
_INTEGERS = {"retry_after_seconds", "proxy_error_status", "max_body_bytes"}


@dataclass
class Faults:
    """Fault settings; every rate is a share of ``/api/v1`` requests, in [0, 1]."""

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_seconds: int = 1
    latency: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    fail_after_commit_rate: float = 0.0
    outage_until: float = 0.0
    outage_kind: str = "lago"
    outage_status: int = 503
    proxy_error_rate: float = 0.0
    proxy_error_status: int = 502
    reset_rate: float = 0.0
    refuse_rate: float = 0.0
    max_body_bytes: int = 0
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.reseed(self.seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random draws from ``seed`` (``None``: unpredictable)."""
        self.seed = seed
        self.rng = random.Random(seed)

    def outage(self, seconds: float, kind: str = "lago", status: int = 503) -> None:
        """Fail every request for the next ``seconds`` (0 ends an outage).

        ``kind``: ``lago`` (503 JSON with ``Retry-After``), ``proxy`` (``status``, 502/503/504,
        as an HTML page without ``Retry-After``), ``refuse``, ``reset`` or ``hang``.
        """
        if kind not in OUTAGE_KINDS:
            raise ValueError(f"unknown outage kind: {kind} (one of {', '.join(OUTAGE_KINDS)})")
        self.outage_kind, self.outage_status = kind, int(status)
        self.outage_until = time.monotonic() + seconds if seconds > 0 else 0.0

    def outage_remaining(self) -> float:
        """Seconds left in the current outage, 0 when none."""
        return max(0.0, self.outage_until - time.monotonic())

    def clear(self) -> None:
        """Back to a healthy server, keeping the seed."""
        healthy = Faults(seed=self.seed)
        for item in fields(self):
            setattr(self, item.name, getattr(healthy, item.name))

    def draw(self) -> Fault:
        """Decide the fate of one request; each configured rate costs one draw."""
        if self.outage_until and self.outage_remaining() > 0:
            return OUTAGE_KINDS[self.outage_kind]
        # New rates come last: a seeded run drawing only the older ones repeats exactly.
        for rate, fault in (
            (self.timeout_rate, Fault.TIMEOUT),
            (self.rate_limit_rate, Fault.RATE_LIMIT),
            (self.error_rate, Fault.ERROR),
            (self.fail_after_commit_rate, Fault.FAIL_AFTER_COMMIT),
            (self.proxy_error_rate, Fault.PROXY_ERROR),
            (self.reset_rate, Fault.RESET),
            (self.refuse_rate, Fault.REFUSE),
        ):
            if rate > 0 and self.rng.random() < rate:
                return fault
        return Fault.NONE

    def proxy_status(self) -> int:
        """The status a proxy answers: the current outage's, else ``proxy_error_status``."""
        if self.outage_until and self.outage_kind == "proxy" and self.outage_remaining() > 0:
            return self.outage_status
        return self.proxy_error_status

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply settings from the control endpoint; unknown keys raise ``ValueError``.

        ``outage_seconds`` starts an outage of ``outage_kind`` (``lago``) answered with
        ``outage_status`` (503), both read from the same settings.
        """
        settings = dict(settings)
        outage = {
            key: settings.pop(key) for key in ("outage_kind", "outage_status") if key in settings
        }
        if outage and "outage_seconds" not in settings:
            raise ValueError("outage_kind and outage_status go with outage_seconds")
        settable = {item.name for item in fields(self)} - {
            "rng",
            "seed",
            "outage_until",
            "outage_kind",
            "outage_status",
        }
        for key, value in settings.items():
            if key == "outage_seconds":
                kind = str(outage.get("outage_kind", "lago"))
                self.outage(float(value), kind, int(outage.get("outage_status", 503)))
            elif key == "seed":
                self.reseed(None if value is None else int(value))
            elif key in settable:
                setattr(self, key, (int if key in _INTEGERS else float)(value))
            else:
                raise ValueError(f"unknown fault setting: {key}")

    def snapshot(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        values.pop("rng")
        values.pop("outage_until")
        values["outage_remaining_seconds"] = self.outage_remaining()
        return values
