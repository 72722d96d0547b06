from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway
from tests.integrations.fake_stripe import API_KEY, FakeStripe


@pytest.fixture
def stripe() -> FakeStripe:
    """Stripe, faked at the HTTP transport."""
    return FakeStripe()


async def _running(
    database_url: str, emulator: EmulatorState, stripe: FakeStripe, collection: str
) -> AsyncIterator[Gateway]:
    settings = make_settings(
        database_url,
        stripe_secret_key=API_KEY,
        stripe_api_base="https://stripe.test",
        collection=collection,
    )
    gw, manager = await start_gateway(settings, emulator, stripe_transport=stripe)
    try:
        yield gw
    finally:
        await gw.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == [], "Lago contract violations"


@pytest.fixture
async def linked(
    database_url: str, emulator: EmulatorState, stripe: FakeStripe
) -> AsyncIterator[Gateway]:
    """The gateway with Stripe configured, collecting itself (GATEWAY_COLLECTION=gateway)."""
    async for gw in _running(database_url, emulator, stripe, "gateway"):
        yield gw


@pytest.fixture
async def lago_collects(
    database_url: str, emulator: EmulatorState, stripe: FakeStripe
) -> AsyncIterator[Gateway]:
    """The gateway with Stripe configured and Lago's integration collecting (collection=lago)."""
    async for gw in _running(database_url, emulator, stripe, "lago"):
        yield gw
