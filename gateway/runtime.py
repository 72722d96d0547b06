"""The infrastructure one gateway process shares: settings, the database, the Lago and Stripe
clients. Capabilities keep their own long-lived state (``gateway.parts``); a job waits on the
database's wake-ups (``Database.wake``)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

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
    # What invoice files (``file_url``) are fetched through: on the embedded default, this
    # app itself (the emulator serves them under /lago); None: the network.
    files: httpx.AsyncBaseTransport | None = None
