"""An in-memory Lago subset for tests and local runs: ``create_app(state)`` and its state."""

from .app import DEFAULT_API_KEY, create_app
from .faults import Fault, Faults
from .outbox import Webhook
from .state import EmulatorState

__all__ = ["DEFAULT_API_KEY", "EmulatorState", "Fault", "Faults", "Webhook", "create_app"]
