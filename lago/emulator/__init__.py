"""An in-memory Lago subset for tests and local runs: ``create_app(state)`` and its state."""

from .app import DEFAULT_API_KEY, create_app
from .faults import OUTAGE_KINDS, ConnectionFault, Fault, Faults
from .outbox import Webhook
from .state import EmulatorState
from .transport import FaultyTransport

__all__ = [
    "DEFAULT_API_KEY",
    "OUTAGE_KINDS",
    "ConnectionFault",
    "EmulatorState",
    "Fault",
    "Faults",
    "FaultyTransport",
    "Webhook",
    "create_app",
]
