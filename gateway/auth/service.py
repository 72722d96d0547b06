"""Gateway API keys: created once and shown once, stored as SHA-256 hashes, scoped."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.auth import store
from gateway.auth.models import ApiKey
from gateway.db import Database, utcnow
from gateway.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed

KEY_PREFIX = "gw_"


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"
    BILLING_WRITE = "billing:write"
    BILLING_READ = "billing:read"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and its scopes."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


async def authenticate(verifier: KeyVerifier, authorization: str) -> Principal:
    """The caller behind an ``Authorization`` header value (``Bearer <key>``), or 401."""
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized()
    principal = await verifier.verify(key)
    if principal is None:
        raise Unauthorized()
    return principal


def authorize(principal: Principal, scope: Scope) -> Principal:
    """``principal`` when it holds ``scope`` (or ``admin``), else 403."""
    if not principal.allows(scope):
        raise Forbidden(f"this key lacks the {scope.value} scope", code="missing_scope")
    return principal


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is as safe as a slow one here.
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(values: list[str] | tuple[str, ...]) -> list[str]:
    """Validate scope names; raise naming the first unknown one."""
    known = {scope.value for scope in Scope}
    for value in values:
        if value not in known:
            raise ValidationFailed(details={"scopes": [f"unknown scope {value!r}"]})
    if not values:
        raise ValidationFailed(details={"scopes": ["at least one scope is required"]})
    return sorted(set(values))


async def create_key(session: AsyncSession, name: str, scopes: list[str]) -> str:
    """Create a key and return it in clear; this is the only time it is visible."""
    if await store.by_name(session, name) is not None:
        raise Conflict(f"a key named {name!r} already exists", code="key_name_taken")
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        name=name,
        prefix=prefix,
        key_hash=hash_key(key),
        scopes=" ".join(parse_scopes(scopes)),
        created_at=utcnow(),
    )
    await store.save(session, row)
    return key


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return await store.every_key(session)


async def revoke_key(session: AsyncSession, name: str) -> None:
    """Revoke a key by name; it stops working within the verifier's cache time."""
    key = await store.by_name(session, name)
    if key is None:
        raise NotFound(f"no key named {name!r}", code="key_not_found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await store.save(session, key)


class KeyVerifier:
    """Checks bearer keys against the database, caching answers for a few seconds.

    A key in steady use never expires under load: in the last ``REFRESH_AHEAD`` share of its
    time a cached answer is looked up again in the background, and is still answered
    meanwhile. A key that is not cached is looked up once for all the requests waiting on it.
    Without either, every request in flight when a busy key's answer expired made a lookup
    of its own: every connection stalled once per cache period (p99 45-70 ms instead of ~25
    at 5,000 events/s). An answer counts from when its lookup began, so a revoked key is
    refused at most ``cache_seconds`` after the revocation, as before.
    """

    REFRESH_AHEAD = 0.2

    def __init__(self, database: Database, cache_seconds: float) -> None:
        self._database = database
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lookups: dict[str, asyncio.Task[Principal | None]] = {}

    async def verify(self, key: str) -> Principal | None:
        """The principal for ``key``, or None when it is unknown or revoked."""
        digest = hash_key(key)
        if self._cache_seconds <= 0:
            return await self._lookup(key, digest)  # no cache: each request asks
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            if cached[0] - now < self._cache_seconds * self.REFRESH_AHEAD:
                self._lookup_once(key, digest)
            return cached[1]
        return await asyncio.shield(self._lookup_once(key, digest))

    def _lookup_once(self, key: str, digest: str) -> asyncio.Task[Principal | None]:
        task = self._lookups.get(digest)
        if task is None:
            task = asyncio.ensure_future(self._lookup_and_cache(key, digest))
            self._lookups[digest] = task
            task.add_done_callback(lambda done: self._settled(digest, done))
        return task

    def _settled(self, digest: str, task: asyncio.Task[Principal | None]) -> None:
        self._lookups.pop(digest, None)
        if not task.cancelled():
            task.exception()  # a failed refresh nobody waited on: the waiters, if any, get it

    async def _lookup_and_cache(self, key: str, digest: str) -> Principal | None:
        started = time.monotonic()
        principal = await self._lookup(key, digest)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (started + self._cache_seconds, principal)
        return principal

    async def _lookup(self, key: str, digest: str) -> Principal | None:
        parts = key.split("_")
        if len(parts) < 3 or not key.startswith(KEY_PREFIX):
            return None
        async with self._database.session() as session:
            row = await store.by_prefix(session, parts[1])
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.key_hash, digest):
            return None
        return Principal(name=row.name, scopes=frozenset(row.scopes.split()))
