"""Fault injection: which requests fail, decided before the handler runs."""

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
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.reseed(self.seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random draws from ``seed`` (``None``: unpredictable)."""
        self.seed = seed
        self.rng = random.Random(seed)

    def outage(self, seconds: float) -> None:
        """Answer every request 503 for the next ``seconds`` (0 ends an outage)."""
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
            return Fault.OUTAGE
        for rate, fault in (
            (self.timeout_rate, Fault.TIMEOUT),
            (self.rate_limit_rate, Fault.RATE_LIMIT),
            (self.error_rate, Fault.ERROR),
            (self.fail_after_commit_rate, Fault.FAIL_AFTER_COMMIT),
        ):
            if rate > 0 and self.rng.random() < rate:
                return fault
        return Fault.NONE

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply settings from the control endpoint; unknown keys raise ``ValueError``."""
        settable = {item.name for item in fields(self)} - {"rng", "seed", "outage_until"}
        for key, value in settings.items():
            if key == "outage_seconds":
                self.outage(float(value))
            elif key == "seed":
                self.reseed(None if value is None else int(value))
            elif key in settable:
                caster = int if key == "retry_after_seconds" else float
                setattr(self, key, caster(value))
            else:
                raise ValueError(f"unknown fault setting: {key}")

    def snapshot(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        values.pop("rng")
        values.pop("outage_until")
        values["outage_remaining_seconds"] = self.outage_remaining()
        return values
