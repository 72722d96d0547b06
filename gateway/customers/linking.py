"""The Stripe customer linked to each external id: created once, or adopted when given.

Creation uses the idempotency key ``customer-create-{external_id}``, so concurrent or
retried requests get the same Stripe customer, and the link is committed as soon as Stripe
answers (before Lago is called), so a Stripe customer the gateway created always has its
link, and a retry after a Lago failure reuses it. Stripe is called with no transaction open.

    StripeLinks.resolve(external_id, given=)   the caller's id (verified in Stripe), else the
                                               stored link, else a new customer (if create)
    StripeLinks.ensure(external_id)            the same, for collection: always a customer
"""

from __future__ import annotations

import time

from gateway.billing.passthrough import Write, audit, elapsed_ms, outcome_of, record_write
from gateway.customers import store
from gateway.db import Database
from gateway.errors import GatewayError, from_stripe
from gateway.integrations.stripe.client import (
    StripeClient,
    StripeError,
)
from gateway.logging import get_logger

log = get_logger(__name__)
LINK_ACTION = "customers.stripe_link"


def idempotency_key(external_id: str) -> str:
    """The Stripe idempotency key of creating the customer of ``external_id``."""
    return f"customer-create-{external_id}"


class StripeLinks:
    """Finds, adopts or creates the Stripe customer of an external id, and stores the link."""

    def __init__(self, database: Database, stripe: StripeClient | None) -> None:
        self._database = database
        self._stripe = stripe

    async def resolve(
        self,
        external_id: str,
        *,
        actor: str,
        given: str | None = None,
        create: bool = True,
        email: str | None = None,
        name: str | None = None,
    ) -> str | None:
        """The Stripe customer id for ``external_id``: adopted, already linked or created."""
        link = await store.find(self._database, external_id)
        linked = link.stripe_customer_id if link is not None else None
        if given:
            if given == linked:
                return given
            return await self._adopt(external_id, given, actor)
        if linked or not create or self._stripe is None:
            return linked
        return await self._create(external_id, actor, email, name)

    async def ensure(self, external_id: str, *, actor: str, email: str | None = None) -> str:
        """The linked Stripe customer, created if there is none yet (Stripe must be configured)."""
        if self._stripe is None:
            raise RuntimeError("Stripe is not configured (GATEWAY_STRIPE_SECRET_KEY)")
        found = await self.resolve(external_id, actor=actor, email=email)
        assert found is not None
        return found

    async def _adopt(self, external_id: str, given: str, actor: str) -> str:
        detail = {"stripe_customer_id": given, "via": "adopted"}
        change = Write(actor, LINK_ACTION, external_id, detail, upstream="stripe")
        started = time.perf_counter()
        if self._stripe is not None:
            try:
                await self._stripe.retrieve_customer(given)
            except StripeError as exc:
                raise await self._failed(change, exc, started) from exc
        latency = elapsed_ms(started) if self._stripe is not None else None
        return await self._link(change, external_id, given, latency, keep=False)

    async def _create(
        self, external_id: str, actor: str, email: str | None, name: str | None
    ) -> str:
        assert self._stripe is not None
        started = time.perf_counter()
        change = Write(actor, LINK_ACTION, external_id, {"via": "created"}, upstream="stripe")
        try:
            customer = await self._stripe.create_customer(
                external_id=external_id,
                idempotency_key=idempotency_key(external_id),
                email=email,
                name=name,
                metadata={"created_by": "billing-gateway"},
            )
        except StripeError as exc:
            raise await self._failed(change, exc, started) from exc
        detail = {"stripe_customer_id": customer.id, "via": "created"}
        change = Write(actor, LINK_ACTION, external_id, detail, upstream="stripe")
        stored = await self._link(change, external_id, customer.id, elapsed_ms(started), keep=True)
        if stored != customer.id:
            log.warning(
                "customers.stripe.duplicate_customer",
                external_id=external_id,
                kept=stored,
                orphan=customer.id,
            )
        return stored

    async def _link(
        self, change: Write, external_id: str, stripe_id: str, latency: float | None, *, keep: bool
    ) -> str:
        async with self._database.session() as session:
            stored = await store.save(
                session, external_id, stripe_customer_id=stripe_id, keep_stripe=keep
            )
            record_write(session, change, 200, latency, "success")
            await session.commit()
        return stored or stripe_id

    async def _failed(self, change: Write, exc: StripeError, started: float) -> GatewayError:
        error = from_stripe(exc)
        await audit(self._database, change, error.status, elapsed_ms(started), outcome_of(error))
        return error
