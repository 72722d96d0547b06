"""Database engine and sessions: PostgreSQL through psycopg 3, or SQLite (aiosqlite, WAL)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import BigInteger, DateTime, Integer, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel.ext.asyncio.session import AsyncSession


def async_url(url: str) -> str:
    """The SQLAlchemy async URL for a plain ``sqlite://`` or ``postgresql://`` URL."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def sync_url(url: str) -> str:
    """The SQLAlchemy sync URL (used by Alembic) for the same database."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def psycopg_conninfo(url: str) -> str:
    """The URL psycopg itself connects with, for a ``postgresql://`` (or ``+psycopg``) URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: an acknowledged event survives power loss, not only a process crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Wake:
    """The one way work is announced to a background job in this process.

    A producer ``set``s it when it has committed (or is about to commit) rows the job acts on,
    saying how many if it knows; the job ``wait``s, then ``take``s the count, which clears it.
    Jobs also poll, so a wake-up saves latency and is never needed for correctness: work
    committed by another process is found by the poll (or a PostgreSQL ``NOTIFY`` a job listens
    to, which it turns into ``set``).
    """

    __slots__ = ("_added", "_event")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._added = 0

    def set(self, added: int = 0) -> None:
        self._added += added
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def take(self) -> int:
        """Clear the wake-up; how many items were announced since the last ``take``."""
        added, self._added = self._added, 0
        self._event.clear()
        return added

    async def wait(self) -> None:
        await self._event.wait()


class Database:
    """The engine and session factory of one database, built once per process, and the
    process's wake-ups for the work its tables hold (``wake``)."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if not self.is_sqlite:
            kwargs = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(async_url(url), **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._wakes: dict[str, Wake] = {}
        self._pool_size = pool_size
        self._direct: AsyncConnectionPool | None = None
        self._direct_lock = asyncio.Lock()

    @property
    def is_postgres(self) -> bool:
        return not self.is_sqlite

    def wake(self, channel: str) -> Wake:
        """This process's wake-up for ``channel``: each capability names its own channels
        (``usage.outbox.PENDING``, ``relay.service.DUE``...) and producers and jobs meet here."""
        found = self._wakes.get(channel)
        if found is None:
            found = self._wakes[channel] = Wake()
        return found

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session; the caller commits once."""
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def direct(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A psycopg connection in autocommit from this process's direct pool (PostgreSQL
        only), for request hot paths (balance, holds): no SQLAlchemy layer, no greenlet
        switch per statement, no ``pool_pre_ping`` round trip on checkout. The pool
        (``psycopg_pool``) discards a connection that broke, and rolls back one returned
        inside a transaction."""
        pool = self._direct or await self._open_direct()
        async with pool.connection() as conn:
            yield conn

    async def _open_direct(self) -> AsyncConnectionPool:
        if self.is_sqlite:
            raise RuntimeError("the direct pool is PostgreSQL's")
        async with self._direct_lock:
            if self._direct is None:
                pool = AsyncConnectionPool(
                    psycopg_conninfo(self.url),
                    min_size=1,
                    max_size=2 * self._pool_size,
                    kwargs={"autocommit": True},
                    configure=_configure_direct,
                    open=False,
                    name="gateway-direct",
                )
                await pool.open()
                self._direct = pool
        return self._direct

    async def dispose(self) -> None:
        if self._direct is not None:
            await self._direct.close()
            self._direct = None
        await self.engine.dispose()


async def _configure_direct(conn: psycopg.AsyncConnection[Any]) -> None:
    """JSON results parsed by orjson (the standard library's parser cost a balance read
    ~80 µs of its ~500)."""
    set_json_loads(orjson.loads, conn)


def pyformat(sql: str) -> str:
    """A statement written for SQLAlchemy's ``text()`` (``:name`` parameters) in psycopg's
    ``%(name)s`` style, so one statement serves both paths (``Database.direct()``)."""
    return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", sql.replace("%", "%%"))


class HeldConnection:
    """A connection one task keeps from one transaction to the next.

    A pool checkout per transaction costs a ``pool_pre_ping`` round trip and the pool's reset
    on return; the ingest writers and the forwarder's loops commit many times a second. After
    any error the task calls ``release`` and the next ``get`` brings a fresh, pinged one.
    ``setup`` is SQL run once on each new connection (session settings of the task's role);
    such a connection is discarded on release, so its settings never reach the pool.
    """

    def __init__(self, engine: AsyncEngine, *, setup: str | None = None) -> None:
        self._engine = engine
        self._setup = setup
        self._conn: AsyncConnection | None = None

    async def get(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            conn = await self._engine.connect()
            if self._setup:
                try:
                    await conn.exec_driver_sql(self._setup)
                    await conn.commit()
                except BaseException:
                    await conn.invalidate()
                    await conn.close()
                    raise
            self._conn = conn
        return self._conn

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                if self._setup:
                    await conn.invalidate()
                await conn.close()


class DirectConnection:
    """A psycopg connection of its own, in autocommit, for a task on PostgreSQL's hot path.

    SQLAlchemy's async layer runs every statement, begin and commit through a greenlet
    switch; for a statement that stands alone (a single statement is its own transaction)
    that layer and the BEGIN and COMMIT round trips cost the ingest writers about three
    times the statement itself. After any error the task calls ``release``.
    """

    def __init__(self, url: str) -> None:
        self._conninfo = psycopg_conninfo(url)
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def get(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        return self._conn

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


# A 64-bit integer id column type; on SQLite a plain INTEGER (its 64-bit rowid, autoincrementing).
BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)
