"""Accounts and sign-in for people (the finance pages); API keys stay for programs.

A role says what a person may do: ``viewer`` reads every finance page; ``operator`` may also
act (retry a payment, send a payment link, refund). Five wrong passwords in a row lock an
account for fifteen minutes (counted in the database, so every process sees it); changing a
password, the role or disabling the account ends its sessions (``session_version``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db import Database
from gateway.errors import Conflict, NotFound, ValidationFailed
from gateway.users import passwords, store
from gateway.users.models import User

MAX_FAILURES = 5
LOCK = timedelta(minutes=15)
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Person:
    """Who is signed in, as the pages and the audit trail see them."""

    id: int
    username: str
    display_name: str
    role: Role
    session_version: int

    @property
    def actor(self) -> str:
        """The audit trail's actor: ``user:<username>`` (never confused with a key's name)."""
        return f"user:{self.username}"

    @property
    def can_act(self) -> bool:
        return self.role == Role.OPERATOR


@dataclass(frozen=True)
class Refusal:
    """Why a sign-in was refused: ``credentials``, ``locked`` (until when) or ``disabled``."""

    reason: str
    until: datetime | None = None


def person_of(user: User) -> Person:
    assert user.id is not None
    return Person(user.id, user.username, user.display_name, Role(user.role), user.session_version)


def check_username(username: str) -> str:
    """``username`` in lower case, or 422 naming the field."""
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise ValidationFailed(
            "a username is 1-64 of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit",
            details={"username": ["invalid_format"]},
        )
    return name


async def create_user(
    session: AsyncSession, username: str, display_name: str, role: Role, password: str | None
) -> User:
    """Create a person's account; ``password`` may be None for one who signs in with OIDC."""
    name = check_username(username)
    if await store.by_username(session, name) is not None:
        raise Conflict(f"a user named {name!r} exists already", code="user_exists")
    hashed = None if password is None else await passwords.hash_password(_strong(password))
    user = User(
        username=name,
        display_name=display_name.strip() or name,
        role=role.value,
        password_hash=hashed,
        created_at=datetime.now(UTC),
    )
    await store.save(session, user)
    return user


def _strong(password: str) -> str:
    problem = passwords.weakness(password)
    if problem is not None:
        raise ValidationFailed(f"the password {problem}", details={"password": ["too_weak"]})
    return password


async def existing(session: AsyncSession, username: str) -> User:
    user = await store.by_username(session, username)
    if user is None:
        raise NotFound(f"no user named {username.strip().lower()!r}", code="user_not_found")
    return user


async def set_password(session: AsyncSession, username: str, password: str) -> User:
    """Replace the password; it ends the user's sessions and lifts a lock."""
    user = await existing(session, username)
    user.password_hash = await passwords.hash_password(_strong(password))
    user.failed_sign_ins, user.locked_until = 0, None
    user.session_version += 1
    await store.save(session, user)
    return user


async def set_role(session: AsyncSession, username: str, role: Role) -> User:
    """Change the role; it ends the user's sessions."""
    user = await existing(session, username)
    user.role = role.value
    user.session_version += 1
    await store.save(session, user)
    return user


async def set_enabled(session: AsyncSession, username: str, enabled: bool) -> User:
    """Disable (ending every session at once) or enable again."""
    user = await existing(session, username)
    user.disabled_at = None if enabled else (user.disabled_at or datetime.now(UTC))
    user.session_version += 1
    await store.save(session, user)
    return user


async def list_users(session: AsyncSession) -> list[User]:
    return await store.everyone(session)


async def sign_in(database: Database, username: str, password: str) -> Person | Refusal:
    """The person if the password is right and the account usable; a refusal otherwise."""
    now = datetime.now(UTC)
    async with database.session() as session:
        user = await store.by_username(session, username.strip())
    locked = user is not None and user.locked_until is not None and user.locked_until > now
    if locked:
        assert user is not None
        return Refusal("locked", user.locked_until)
    matches = await passwords.verify(user.password_hash if user else None, password)
    if user is None or not matches:
        if user is not None:
            return await _failed(database, user, now)
        return Refusal("credentials")
    if user.disabled_at is not None:
        return Refusal("disabled")
    return person_of(await _succeeded(database, user, now))


async def _failed(database: Database, user: User, now: datetime) -> Refusal:
    """Count one wrong password atomically; the fifth in a row locks the account."""
    assert user.id is not None
    until = None
    async with database.session() as session:
        conn = await session.connection()
        if await store.count_failure(conn, user.id) >= MAX_FAILURES:
            until = now + LOCK
            await store.lock(conn, user.id, until)
        await session.commit()
    return Refusal("locked", until) if until else Refusal("credentials")


async def _succeeded(database: Database, user: User, now: datetime) -> User:
    async with database.session() as session:
        fresh = await store.by_id(session, user.id or 0)
        assert fresh is not None
        fresh.failed_sign_ins, fresh.locked_until, fresh.last_sign_in_at = 0, None, now
        await store.save(session, fresh)
        await session.commit()
        return fresh


async def sign_in_oidc(
    database: Database, subject: str, email: str | None, email_verified: bool
) -> Person | Refusal:
    """The person an OpenID Connect identity belongs to: the account linked to ``subject``,
    else the account whose username is the verified ``email`` (linked now, for good)."""
    async with database.session() as session:
        user = await store.by_subject(session, subject)
        if user is None and email and email_verified:
            user = await store.by_username(session, email)
            if user is not None and user.oidc_subject not in (None, subject):
                user = None  # that account is linked to another identity
        if user is None:
            return Refusal("unknown_person")
        if user.disabled_at is not None:
            return Refusal("disabled")
        user.oidc_subject = subject
        user.last_sign_in_at = datetime.now(UTC)
        await store.save(session, user)
        await session.commit()
        return person_of(user)


async def current(database: Database, user_id: int, version: int) -> Person | None:
    """The signed-in person, checked on every page: a disabled account, a new password or a
    new role ends the session."""
    async with database.session() as session:
        user = await store.by_id(session, user_id)
    if user is None or user.disabled_at is not None or user.session_version != version:
        return None
    return person_of(user)
