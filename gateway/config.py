"""Settings, read from the environment with the ``GATEWAY_`` prefix.

A missing or malformed setting fails at start with a message naming the variable.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_DATABASE_URL = "sqlite:///gateway.db"
EMULATOR_LAGO_KEY = "lago-emulator-key"
# Where `gateway serve` listens by default: the CLI reaches the embedded emulator there.
EMBEDDED_GATEWAY_URL = "http://127.0.0.1:8080"


class CollectionMode(StrEnum):
    GATEWAY = "gateway"
    LAGO = "lago"


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    database_url: str = EMBEDDED_DATABASE_URL
    # Empty means "the bundled Lago emulator, in process" (embedded default only).
    lago_api_url: str = ""
    lago_api_key: SecretStr = SecretStr("")
    lago_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0

    stripe_secret_key: SecretStr = SecretStr("")
    stripe_api_base: str = "https://api.stripe.com"
    stripe_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    stripe_webhook_secret: SecretStr = SecretStr("")
    lago_webhook_hmac_key: SecretStr = SecretStr("")
    # JWT webhooks: Lago's LAGO_API_URL when it differs from lago_api_url (default: the same).
    lago_webhook_issuer: str = ""
    collection: CollectionMode = CollectionMode.GATEWAY
    # Dunning: days to wait after each failed collection attempt before the next one.
    collection_retry_days: tuple[Annotated[float, Field(ge=0)], ...] = (1, 3, 5, 7)
    collection_reconcile_seconds: Annotated[float, Field(gt=0)] = 600.0
    # Where Stripe Checkout and the billing portal send the customer back (per call overridable).
    collection_return_url: str = ""
    relay_allow_private: bool = False
    # Seconds to wait after each failed attempt (the first attempt is immediate), ±20% jitter.
    relay_retry_schedule: tuple[Annotated[float, Field(ge=0)], ...] = (
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        36000,
    )
    relay_timeout_seconds: Annotated[float, Field(gt=0)] = 15.0
    relay_concurrency: Annotated[int, Field(ge=1, le=2048)] = 256
    relay_lease_seconds: Annotated[float, Field(gt=0)] = 60.0
    relay_disable_after_seconds: Annotated[float, Field(gt=0)] = 5 * 24 * 3600.0
    session_secret: SecretStr = SecretStr("")
    # Finance sign-in through the company's OpenID Connect provider (all three to turn it on):
    # the issuer (its /.well-known/openid-configuration is read), this client's id and secret.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_label: str = "your company account"
    # The catalog file (lago/catalog.yaml: working folder, else the packaged one); "" for none.
    catalog_path: str = "lago/catalog.yaml"
    # Meters: on (the catalog's metrics are metered as events are accepted) or off; how often
    # they are compared with Lago's current usage (and drift corrected), and
    # how old a token account's copy of the Lago wallet may grow before it is read again.
    meters_enabled: bool = True
    meters_reconcile_seconds: Annotated[float, Field(gt=0)] = 60.0
    meters_wallet_refresh_seconds: Annotated[float, Field(gt=0)] = 300.0
    # How often the token pack reconciler checks purchases whose bonus waits for payment.
    packs_reconcile_seconds: Annotated[float, Field(gt=0)] = 60.0
    # How often packs.grants makes subscribers' token wallets carry their plan's token grant.
    grants_sync_seconds: Annotated[float, Field(gt=0)] = 300.0

    batch_max_events: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # One event as Lago receives it (its JSON payload, UTF-8), and how far past its arrival
    # an event's timestamp may be (see docs/ingest.md).
    event_max_bytes: Annotated[int, Field(ge=512, le=1024 * 1024)] = 8192
    event_max_future_seconds: Annotated[float, Field(ge=0, le=366 * 24 * 3600)] = 86_400.0
    body_max_bytes: Annotated[int, Field(ge=1024)] = 5 * 1024 * 1024
    webhook_body_max_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    # A request body must keep arriving: the longest wait for its next chunk, and for all of
    # it (from the first read); past either, 408 and the connection closes (docs/security.md).
    body_read_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    body_read_total_seconds: Annotated[float, Field(gt=0)] = 60.0
    # Group commits of the usage outbox in flight at once, per API process (PostgreSQL; more
    # processes add more). One gives bigger groups (less CPU per event in some runs), three a
    # shorter latency tail (a request rarely waits behind a whole commit): docs/benchmarks.md.
    outbox_writers: Annotated[int, Field(ge=1, le=16)] = 3
    forward_batch_size: Annotated[int, Field(ge=1, le=100)] = 100
    forward_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    forward_lease_seconds: Annotated[float, Field(gt=0)] = 60.0
    # A forward request's body at most (bytes): well under common proxy limits (nginx: 1 MiB).
    forward_batch_max_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    # The longest wait for one batch's own retry, and for a Retry-After Lago asks for.
    forward_backoff_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    # While Lago is unwell, how often it is probed: from the first to the last interval.
    forward_probe_min_seconds: Annotated[float, Field(gt=0)] = 0.25
    forward_probe_max_seconds: Annotated[float, Field(gt=0)] = 1.0
    outbox_retention_days: Annotated[float, Field(gt=0)] = 30.0
    webhook_retention_days: Annotated[float, Field(gt=0)] = 30.0
    api_key_cache_seconds: Annotated[float, Field(ge=0)] = 5.0
    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _lago_is_configured_outside_the_embedded_default(self) -> Settings:
        if self.lago_api_url and not self.lago_api_key.get_secret_value():
            raise ValueError("GATEWAY_LAGO_API_KEY is required when GATEWAY_LAGO_API_URL is set")
        if not self.lago_api_url and not self.is_sqlite:
            raise ValueError(
                "GATEWAY_LAGO_API_URL is required with a PostgreSQL GATEWAY_DATABASE_URL "
                "(the bundled Lago emulator is for the embedded SQLite default only)"
            )
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError("GATEWAY_DATABASE_URL must be a sqlite:// or postgresql:// URL")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_emulator(self) -> bool:
        return not self.lago_api_url

    @cached_property
    def lago_key(self) -> str:
        return self.lago_api_key.get_secret_value() or EMULATOR_LAGO_KEY


def load_settings() -> Settings:
    """Read settings from the environment, or raise SettingsError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"])
            name = f"GATEWAY_{field.upper()}" if field else "settings"
            problems.append(f"{name}: {err['msg']}")
        raise SettingsError("; ".join(problems)) from exc
