"""Signature checks for Lago's and Stripe's webhooks, over the raw body, in constant time.

Lago signs the body only (no timestamp): ``hmac`` is base64 HMAC-SHA256 with the
organization's key; ``jwt`` is an RS256 JWT whose ``data`` claim is the body and whose
issuer is Lago's ``LAGO_API_URL``. Stripe signs ``"{t}.{body}"`` (``Stripe-Signature``),
checked by the official library with a 300 s tolerance, against every configured secret.

Refusals raise ``WebhookRejected`` (400) or ``SignatureRejected`` (401); the ``code`` is
the reason, answered to the sender, counted and audited.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable

import jwt
import stripe
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.errors import BadRequest, Unauthorized, UpstreamUnavailable
from gateway.integrations.lago.client import LagoClient, LagoError

STRIPE_TOLERANCE_SECONDS = 300
KEY_REFETCH_INTERVAL_SECONDS = 30.0
KEY_FETCH_FAILURE_PAUSE_SECONDS = 5.0


class WebhookRejected(BadRequest):
    """The webhook cannot be read: a header is missing or malformed, or the body is not JSON."""


class SignatureRejected(Unauthorized):
    """The webhook's signature does not verify: forged, altered, stale, or for another secret."""


def verify_lago_hmac(body: bytes, signature: str, key: str) -> None:
    """Base64 HMAC-SHA256 of the raw body with the organization's HMAC key."""
    if not key:
        raise SignatureRejected(code="hmac_key_not_configured")
    expected = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature.encode()):
        raise SignatureRejected(code="invalid_signature")


PublicKeyFetch = Callable[[], Awaitable[RSAPublicKey]]


class LagoPublicKeys:
    """Lago's webhook public key, cached; refetched at most once per interval on a failure.

    A forged JWT fails against the cached key and may trigger one refetch (the key may
    have rotated); further failures inside the interval reuse the cache, so forged
    requests cannot make the gateway hammer Lago. Fetch failures pause fetching briefly.
    """

    def __init__(
        self,
        fetch: PublicKeyFetch,
        *,
        refetch_interval: float = KEY_REFETCH_INTERVAL_SECONDS,
        failure_pause: float = KEY_FETCH_FAILURE_PAUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._refetch_interval = refetch_interval
        self._failure_pause = failure_pause
        self._clock = clock
        self._key: RSAPublicKey | None = None
        self._last_refetch = float("-inf")
        self._paused_until = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def current(self) -> RSAPublicKey:
        """The cached key, fetched on first use."""
        if self._key is not None:
            return self._key
        async with self._lock:
            if self._key is None:
                self._key = await self._fetch_now()
            return self._key

    async def refetched(self, stale: RSAPublicKey) -> RSAPublicKey | None:
        """A newer key than ``stale``, or None (same key, or a refetch is not allowed yet)."""
        async with self._lock:
            if self._key is not stale:
                return self._key
            if self._clock() - self._last_refetch < self._refetch_interval:
                return None
            self._last_refetch = self._clock()
            fresh = await self._fetch_now()
            if _same_key(fresh, stale):
                return None
            self._key = fresh
            return fresh

    async def _fetch_now(self) -> RSAPublicKey:
        if self._clock() < self._paused_until:
            raise UpstreamUnavailable("Lago's webhook public key is unavailable", retry_after=5)
        self.fetches += 1
        try:
            return await self._fetch()
        except UpstreamUnavailable:
            self._paused_until = self._clock() + self._failure_pause
            raise


def _same_key(a: RSAPublicKey, b: RSAPublicKey) -> bool:
    return a.public_numbers() == b.public_numbers()


def lago_key_fetcher(lago: LagoClient) -> PublicKeyFetch:
    """Read ``GET /webhooks/json_public_key`` (``{"webhook":{"public_key":<base64 PEM>}}``)."""

    async def fetch() -> RSAPublicKey:
        try:
            answer = await lago.call("GET", "/webhooks/json_public_key")
        except LagoError as exc:
            raise UpstreamUnavailable(
                "Lago's webhook public key is unavailable", retry_after=5
            ) from exc
        try:
            pem = base64.b64decode(answer["webhook"]["public_key"])
            key = load_pem_public_key(pem)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise UpstreamUnavailable("Lago sent an unreadable public key") from exc
        if not isinstance(key, RSAPublicKey):
            raise UpstreamUnavailable("Lago's webhook public key is not an RSA key")
        return key

    return fetch


def _check_lago_jwt(token: str, key: RSAPublicKey, issuers: list[str], body: bytes) -> None:
    try:
        claims = jwt.decode(
            token, key, algorithms=["RS256"], issuer=issuers, options={"require": ["iss"]}
        )
    except (jwt.InvalidIssuerError, jwt.MissingRequiredClaimError) as exc:
        raise SignatureRejected(code="invalid_issuer") from exc
    except jwt.InvalidSignatureError:
        raise
    except jwt.InvalidTokenError as exc:
        raise SignatureRejected(code="malformed_signature") from exc
    data = claims.get("data")
    if not isinstance(data, str) or not hmac.compare_digest(data.encode(), body):
        raise SignatureRejected(code="invalid_signature")


async def verify_lago_jwt(
    body: bytes, token: str, keys: LagoPublicKeys, issuers: list[str]
) -> None:
    """RS256 with Lago's public key; ``iss`` is Lago's URL; ``data`` equals the raw body."""
    key = await keys.current()
    try:
        _check_lago_jwt(token, key, issuers, body)
        return
    except jwt.InvalidSignatureError:
        fresh = await keys.refetched(key)
    if fresh is None:
        raise SignatureRejected(code="invalid_signature")
    try:
        _check_lago_jwt(token, fresh, issuers, body)
    except jwt.InvalidSignatureError as exc:
        raise SignatureRejected(code="invalid_signature") from exc


def issuers_for(url: str) -> list[str]:
    """Lago puts ``LAGO_API_URL`` in ``iss`` as configured: accept it with or without ``/``."""
    bare = url.rstrip("/")
    return [bare, f"{bare}/"]


def stripe_secrets(setting: str) -> list[str]:
    """``GATEWAY_STRIPE_WEBHOOK_SECRET`` is one secret, or several (comma-separated) in rotation."""
    return [secret.strip() for secret in setting.split(",") if secret.strip()]


def _stripe_header_problem(header: str) -> str | None:
    fields = [part.split("=", 1) for part in header.split(",")]
    timestamps = [value[1] for value in fields if len(value) == 2 and value[0].strip() == "t"]
    if not timestamps:
        return "missing_timestamp"
    if not timestamps[0].strip().isdigit():
        return "malformed_signature"
    if not any(len(value) == 2 and value[0].strip() == "v1" for value in fields):
        return "missing_signature"
    return None


def verify_stripe(
    body: bytes,
    header: str | None,
    secrets: list[str],
    tolerance: int = STRIPE_TOLERANCE_SECONDS,
) -> None:
    """``Stripe-Signature`` by ``stripe.WebhookSignature.verify_header``, any secret matching."""
    if not header:
        raise SignatureRejected(code="missing_signature")
    if not secrets:
        raise SignatureRejected(code="webhook_secret_not_configured")
    problem = _stripe_header_problem(header)
    if problem is not None:
        raise SignatureRejected(code=problem)
    try:
        payload = body.decode()
    except UnicodeDecodeError as exc:
        raise WebhookRejected("the body is not valid JSON", code="invalid_json") from exc
    stale = False
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
            return
        except stripe.SignatureVerificationError as exc:
            # The library checks the signature first, then the age: this one matched.
            stale = stale or str(exc).startswith("Timestamp outside")
    raise SignatureRejected(code="stale_timestamp" if stale else "invalid_signature")
