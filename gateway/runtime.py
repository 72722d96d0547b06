"""The infrastructure one gateway process shares: settings, the database, the Lago and Stripe
clients. Capabilities keep their own long-lived state (``gateway.parts``); a job waits on the
database's wake-ups (``Database.wake``)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import Settings
from gateway.db import Database
from gateway.integrations.lago.client import LagoClient
from gateway.integrations.stripe.client import StripeClient


@dataclass
class Runtime:
    settings: Settings
    database: Database
    lago: LagoClient
    # Set when GATEWAY_STRIPE_SECRET_KEY is.
    stripe: StripeClient | None = None
