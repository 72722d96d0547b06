"""Password hashes: Argon2id through ``argon2-cffi`` (its default, RFC 9106 low-memory profile).

Hashing and verifying cost tens of milliseconds of CPU on purpose, so the async callers run
them in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
_HASHER = PasswordHasher()
# Verified against when the username is unknown, so an unknown name costs as long as a known one.
_DUMMY = _HASHER.hash("not-a-password-anyone-has")


def weakness(password: str) -> str | None:
    """Why ``password`` is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if password.strip() != password:
        return "must not start or end with white space"
    return None


async def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (computed off the event loop)."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; a missing hash costs the same and fails."""
    return await asyncio.to_thread(_verify, stored, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
