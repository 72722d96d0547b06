"""The ``users`` table: every query on it, through the ``User`` model."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.users.models import User

TABLE = User.__table__  # type: ignore[attr-defined]


async def by_username(session: AsyncSession, username: str) -> User | None:
    """The user with this username, compared case-insensitively."""
    query = select(User).where(func.lower(TABLE.c.username) == username.lower())
    return (await session.exec(query)).first()


async def by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def by_subject(session: AsyncSession, subject: str) -> User | None:
    return (await session.exec(select(User).where(TABLE.c.oidc_subject == subject))).first()


async def everyone(session: AsyncSession) -> list[User]:
    """Disabled ones included, oldest first."""
    return list((await session.exec(select(User).order_by(TABLE.c.id))).all())


async def save(session: AsyncSession, user: User) -> None:
    """Insert or update ``user`` in the session's transaction (flushed, not committed)."""
    session.add(user)
    await session.flush()


async def count_failure(conn: AsyncConnection, user_id: int) -> int:
    """One more wrong password in a row, counted atomically; the new count."""
    result = await conn.execute(
        update(TABLE)
        .where(TABLE.c.id == user_id)
        .values(failed_sign_ins=TABLE.c.failed_sign_ins + 1)
        .returning(TABLE.c.failed_sign_ins)
    )
    return int(result.scalar_one())


async def lock(conn: AsyncConnection, user_id: int, until: datetime) -> None:
    """Refuse sign-ins until ``until``; the count starts again."""
    await conn.execute(
        update(TABLE).where(TABLE.c.id == user_id).values(failed_sign_ins=0, locked_until=until)
    )
