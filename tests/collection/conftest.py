"""A gateway collecting through a fake Stripe, with Lago's webhooks posted to it, signed.

``Harness.settle()`` plays the network: Lago's queued webhooks and Stripe's new events
are posted to the gateway's public webhook routes (signed as their senders sign them),
the inbox is processed, and the collector makes one pass, until nothing moves.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlmodel import select

from gateway.collection import collector
from gateway.collection.models import Collection
from gateway.customers import store as links
from gateway.webhooks.processor import Processor
from gateway.worker import WEBHOOK_HANDLERS
from lago.emulator import EmulatorState
from lago.emulator.customers import upsert_customer
from lago.emulator.webhook_endpoints import create_endpoint
from tests.collection.stripe_fake import API_KEY, SUCCEED, WEBHOOK_SECRET, FakeStripe
from tests.conftest import Gateway, make_settings, start_gateway

RETURN_URL = "https://shop.test/billing/done"
LAGO_HOOK = "http://gateway.test/gateway/webhooks/lago"


def collection_settings(database_url: str, emulator: EmulatorState, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "stripe_secret_key": API_KEY,
        "stripe_api_base": "https://stripe.test",
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "lago_webhook_hmac_key": emulator.hmac_key,
        "collection_return_url": RETURN_URL,
        "relay_allow_private": True,
        "relay_retry_schedule": (0.05, 0.05, 0.05),
    }
    values.update(overrides)
    return make_settings(database_url, **values)


@dataclass
class Harness:
    gw: Gateway
    stripe: FakeStripe
    sent: int = 0
    posted: list[dict[str, Any]] = field(default_factory=list)

    @property
    def emulator(self) -> EmulatorState:
        return self.gw.emulator

    async def customer(self, external_id: str, behaviour: str = SUCCEED) -> str:
        """A customer in Lago, its Stripe customer with a default card, and their link."""
        upsert_customer(
            self.emulator,
            {
                "external_id": external_id,
                "name": external_id.title(),
                "email": f"ap@{external_id}.test",
                "currency": "USD",
            },
        )
        stripe_id = self.stripe.add_customer(f"ap@{external_id}.test")
        self.stripe.add_card(stripe_id, behaviour)
        async with self.gw.runtime.database.session() as session:
            await links.save(session, external_id, stripe_customer_id=stripe_id)
            await session.commit()
        return stripe_id

    async def post_stripe(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            body, headers = self.stripe.signed(event)
            answer = await self.gw.client.post(
                "/gateway/webhooks/stripe", content=body, headers=headers
            )
            assert answer.status_code in (200, 202), answer.text
            self.posted.append(event)

    def new_stripe_events(self) -> list[dict[str, Any]]:
        fresh = self.stripe.events[self.sent :]
        self.sent = len(self.stripe.events)
        return fresh

    async def process(self) -> int:
        handled = 0
        processor = Processor(self.gw.runtime, WEBHOOK_HANDLERS)
        while count := await processor.process_due():
            handled += count
        return handled

    async def settle(
        self,
        *,
        stripe: bool = True,
        shuffle: random.Random | None = None,
        twice: bool = False,
        collect: bool = True,
        now: float | None = None,
    ) -> None:
        """Deliver, process and collect until nothing is left to do."""
        for _ in range(20):
            moved = len(self.emulator.webhooks_pending)
            await self.emulator.deliver_webhooks(self.gw.client)
            events = self.new_stripe_events() if stripe else []
            if twice:
                events = events + list(events)
            if shuffle is not None:
                shuffle.shuffle(events)
            await self.post_stripe(events)
            moved += len(events) + await self.process()
            if collect:
                counts = await collector.run_once(self.gw.runtime, now=now)
                moved += sum(counts.values())
            if not moved and not self.emulator.webhooks_pending:
                return
        raise AssertionError("the gateway never settled")

    async def attempts(self, invoice_id: str) -> list[Collection]:
        async with self.gw.runtime.database.session() as session:
            result = await session.exec(
                select(Collection)
                .where(Collection.invoice_id == invoice_id)
                .order_by(Collection.attempt)  # type: ignore[arg-type]
            )
            return list(result.all())

    def invoice(self, lago_id: str) -> dict[str, Any]:
        return self.emulator.invoices[lago_id]


async def start_collecting(
    database_url: str,
    emulator: EmulatorState,
    stripe: FakeStripe,
    *,
    run_workers: bool = False,
    **overrides: Any,
) -> tuple[Harness, Any]:
    create_endpoint(emulator, {"webhook_url": LAGO_HOOK, "signature_algo": "hmac"})
    settings = collection_settings(database_url, emulator, **overrides)
    gw, manager = await start_gateway(
        settings, emulator, stripe_transport=stripe, run_workers=run_workers
    )
    return Harness(gw, stripe), manager


@pytest.fixture
def stripe() -> FakeStripe:
    return FakeStripe()


@pytest.fixture
async def harness(
    database_url: str, emulator: EmulatorState, stripe: FakeStripe
) -> AsyncIterator[Harness]:
    """Gateway collection on, Stripe faked, workers off (tests drive every step)."""
    found, manager = await start_collecting(
        database_url, emulator, stripe, collection_retry_days=(1.0, 3.0)
    )
    try:
        yield found
    finally:
        await found.gw.client.aclose()
        await manager.__aexit__(None, None, None)
    assert emulator.contract_violations == [], "Lago contract violations"


def days(n: float) -> float:
    """``n`` days from now, as the collector's ``now``."""
    return time.time() + n * 86400.0 + 1.0
