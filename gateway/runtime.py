"""What a running gateway process holds: built once in the lifespan, shared by endpoints and
workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.auth.service import KeyVerifier
from gateway.catalog.schemas import Catalog
from gateway.config import Settings
from gateway.db import Database
from gateway.integrations.lago.client import LagoClient
from gateway.integrations.stripe.client import StripeClient
from gateway.usage.lookups import LagoLookups
from gateway.usage.outbox import OutboxWriter


@dataclass
class Runtime:
    settings: Settings
    database: Database
    lago: LagoClient
    verifier: KeyVerifier
    ingest: OutboxWriter
    lookups: LagoLookups
    # The catalog file loaded at start (token packs, allowances, pinned usage codes).
    catalog: Catalog | None = None
    # Set when GATEWAY_STRIPE_SECRET_KEY is.
    stripe: StripeClient | None = None
    # Capabilities hang further long-lived pieces here (Stripe client, signers...).
    extras: dict[str, Any] = field(default_factory=dict)

