"""Shared fixtures: every database-backed test runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server is started by the test run itself (``tests/support/postgres.py``); with
no server binaries the PostgreSQL half skips, unless GATEWAY_TEST_REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from gateway.app import create_app
from gateway.auth.service import create_key
from gateway.config import Settings
from gateway.db import Database
from gateway.migrations.runner import upgrade
from gateway.parts import Parts
from gateway.runtime import Runtime
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from tests.support import postgres, stripe_contract

LAGO_URL = "http://lago.test"
LAGO_KEY = "test-lago-key"
_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default=os.environ.get("GATEWAY_TEST_DB", "both"),
        choices=["both", "sqlite", "postgres"],
        help="Which databases to run the suite on.",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--db")
        backends = ["sqlite", "postgres"] if choice == "both" else [choice]
        metafunc.parametrize("backend", backends, scope="function")


@pytest.fixture(autouse=True)
def _stripe_contract_kept() -> Iterator[None]:
    """A Stripe request or answer outside Stripe's spec fails the test that made it, even
    when the SDK took the fake's exception for a network error and the gateway coped."""
    stripe_contract.VIOLATIONS.clear()
    yield
    found = list(stripe_contract.VIOLATIONS)
    stripe_contract.VIOLATIONS.clear()
    assert found == [], "Stripe contract violations:\n" + "\n".join(found)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.PostgresServer | None]:
    try:
        server = postgres.start()
    except (RuntimeError, OSError) as exc:
        if os.environ.get(postgres.REQUIRE_ENV) == "1":
            raise
        pytest.skip(f"no PostgreSQL server available: {exc}")
        yield None
        return
    try:
        template_url = postgres.create_database(server, "gateway_template")
        upgrade(template_url)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_pool(
    postgres_server: postgres.PostgresServer | None,
) -> Iterator[postgres.DatabasePool | None]:
    """Migrated databases on the test server, emptied between tests (``DatabasePool``)."""
    if postgres_server is None:
        yield None
        return
    pool = postgres.DatabasePool(postgres_server, "gateway_template")
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test: migrating costs ~0.1 s, copying ~1 ms."""
    path = tmp_path_factory.mktemp("sqlite-template") / "gateway.db"
    upgrade(f"sqlite:///{path}")
    # The copy must be the whole database: no journal or WAL file may hold part of it.
    beside = sorted(p.name for p in path.parent.iterdir() if p != path)
    assert beside == [], f"the migrated SQLite template left {beside} beside it"
    return path


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database on ``backend`` holding no rows, used by this test only."""
    if backend == "sqlite":
        path = tmp_path / "gateway.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    pool = request.getfixturevalue("postgres_pool")
    if pool is None:
        pytest.skip("no PostgreSQL server")
    url = pool.acquire()
    try:
        yield url
    finally:
        pool.release(url)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The ``Database`` of ``database_url``, disposed of after the test."""
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.dispose()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "lago_api_url": LAGO_URL,
        "lago_api_key": LAGO_KEY,
        "lago_timeout_seconds": 2.0,
        "forward_lease_seconds": 5.0,
        "forward_backoff_max_seconds": 0.5,
        "api_key_cache_seconds": 0.0,
        "log_json": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def emulator() -> EmulatorState:
    """A fresh Lago emulator state (its app is mounted under the gateway's Lago client)."""
    return EmulatorState()


@dataclass
class Gateway:
    """A running gateway app in process, its HTTP client, and a way to mint keys."""

    app: FastAPI
    client: httpx.AsyncClient
    emulator: EmulatorState
    lago_app: Any

    @property
    def parts(self) -> Parts:
        parts: Parts = self.app.state.parts
        return parts

    @property
    def runtime(self) -> Runtime:
        return self.parts.runtime

    async def key(self, *scopes: str, name: str | None = None) -> str:
        async with self.runtime.database.session() as session:
            key = await create_key(session, name or f"key-{next(_counter)}", list(scopes))
            await session.commit()
        return key

    async def headers(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.key(*scopes)}"}


async def start_gateway(
    settings: Settings,
    emulator: EmulatorState,
    *,
    run_workers: bool = False,
    lago_transport: httpx.AsyncBaseTransport | None = None,
    validate_contract: bool = True,
    stripe_transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[Gateway, LifespanManager]:
    # Every request the gateway sends and every answer the emulator gives is checked against
    # Lago's OpenAPI spec; the fixtures fail a test that caused a violation.
    lago_app = create_emulator(emulator, api_key=LAGO_KEY, validate=validate_contract)
    transport = lago_transport or httpx.ASGITransport(app=lago_app)
    app = create_app(
        settings,
        lago_transport=transport,
        stripe_transport=stripe_transport,
        run_workers=run_workers,
    )
    manager = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
    await manager.__aenter__()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url="http://gateway.test"
    )
    return Gateway(app, client, emulator, lago_app), manager


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings, emulator: EmulatorState, *, check_contract: bool = True, **options: Any
) -> AsyncIterator[Gateway]:
    """A gateway started with ``start_gateway(settings, emulator, **options)``, stopped after;
    a Lago contract violation it caused fails the test (``check_contract``)."""
    gw, manager = await start_gateway(settings, emulator, **options)
    try:
        yield gw
    finally:
        await gw.client.aclose()
        await manager.__aexit__(None, None, None)
    if check_contract:
        assert emulator.contract_violations == [], "Lago contract violations"


@pytest.fixture
async def gateway(database_url: str, emulator: EmulatorState) -> AsyncIterator[Gateway]:
    """The gateway on a fresh database, Lago emulated in process, workers off."""
    async with running_gateway(make_settings(database_url), emulator) as gw:
        yield gw


@pytest.fixture
async def gateway_with_workers(
    database_url: str, emulator: EmulatorState
) -> AsyncIterator[Gateway]:
    """The gateway with its background workers running."""
    async with running_gateway(make_settings(database_url), emulator, run_workers=True) as gw:
        yield gw
