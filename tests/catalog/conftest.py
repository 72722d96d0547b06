from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.catalog.loader import load_catalog
from gateway.catalog.schemas import Catalog
from gateway.integrations.lago.client import LagoClient
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator

REPO = Path(__file__).resolve().parents[2]
CATALOG_FILE = REPO / "lago" / "catalog.yaml"
LAGO_KEY = "catalog-test-key"


@pytest.fixture
def catalog_text() -> str:
    return CATALOG_FILE.read_text(encoding="utf-8")


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog(CATALOG_FILE)


@pytest.fixture
async def lago(emulator: EmulatorState) -> AsyncIterator[LagoClient]:
    """A Lago client on the in-process emulator; every exchange is checked against Lago's spec."""
    app = create_emulator(emulator, api_key=LAGO_KEY, validate=True)
    client = LagoClient("http://lago.test", LAGO_KEY, transport=httpx.ASGITransport(app=app))
    yield client
    await client.aclose()
    assert emulator.contract_violations == [], "Lago contract violations"
