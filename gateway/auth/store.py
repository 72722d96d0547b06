"""The ``api_keys`` table: every query on it, through the ``ApiKey`` model."""

from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.auth.models import ApiKey

TABLE = ApiKey.__table__  # type: ignore[attr-defined]


async def by_name(session: AsyncSession, name: str) -> ApiKey | None:
    return (await session.exec(select(ApiKey).where(TABLE.c.name == name))).first()


async def by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    return (await session.exec(select(ApiKey).where(TABLE.c.prefix == prefix))).first()


async def every_key(session: AsyncSession) -> list[ApiKey]:
    """Revoked ones included, oldest first."""
    return list((await session.exec(select(ApiKey).order_by(TABLE.c.id))).all())


async def save(session: AsyncSession, key: ApiKey) -> None:
    """Insert or update ``key`` in the session's transaction (flushed, not committed)."""
    session.add(key)
    await session.flush()
