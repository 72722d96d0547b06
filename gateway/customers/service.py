"""Customers: upsert in Lago with the Stripe link the collection mode asks for, read, delete.

Collection ``gateway`` (default): the Lago customer carries no payment provider; the gateway
links (creates or adopts) the Stripe customer itself. Collection ``lago``: the Lago customer
carries Lago's Stripe billing configuration; the gateway never creates a Stripe customer,
it passes on the one given or already linked (or lets Lago create one) and records it.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.billing.passthrough import (
    Params,
    Then,
    Write,
    checked_write,
    read,
    refuse,
    segment,
    write,
)
from gateway.config import CollectionMode
from gateway.customers import payment_methods, store
from gateway.customers.linking import StripeLinks
from gateway.customers.schemas import CustomerInput
from gateway.db import Database
from gateway.errors import ValidationFailed
from gateway.integrations.lago.client import LagoClient
from gateway.integrations.stripe.client import StripeClient
from gateway.payments import unserved

# The billing_configuration keys that belong to a payment provider.
PROVIDER_KEYS = frozenset(
    {
        "payment_provider",
        "payment_provider_code",
        "provider_customer_id",
        "provider_payment_methods",
        "sync",
        "sync_with_provider",
    }
)


class Customers:
    """The customers capability over Lago and Stripe."""

    def __init__(
        self, database: Database, lago: LagoClient, links: StripeLinks, collection: CollectionMode
    ) -> None:
        self._database = database
        self._lago = lago
        self._links = links
        self._collection = collection

    async def upsert(self, params: dict[str, Any], actor: str) -> dict[str, Any]:
        """Create or update by ``external_id`` in Lago, linking the Stripe customer first."""
        change = await checked_write(
            self._database, actor, "customers.upsert", CustomerInput, params
        )
        external_id: str = params["external_id"]
        billing = dict(params.get("billing_configuration") or {})
        stripe_id = await self._links.resolve(
            external_id,
            actor=actor,
            given=billing.get("provider_customer_id"),
            create=self._collection is CollectionMode.GATEWAY,
            email=params.get("email"),
            name=params.get("name"),
        )
        body = {k: v for k, v in params.items() if k != "billing_configuration"}
        billing = self._billing_configuration(billing, stripe_id)
        if billing:
            body["billing_configuration"] = billing
        if stripe_id:
            change = Write(actor, change.action, external_id, {"stripe_customer_id": stripe_id})
        return await write(
            self._database,
            self._lago,
            change,
            "POST",
            "/customers",
            json={"customer": body},
            then=_keep_link(external_id, stripe_id),
        )

    def _billing_configuration(
        self, billing: dict[str, Any], stripe_id: str | None
    ) -> dict[str, Any]:
        kept = {k: v for k, v in billing.items() if k not in PROVIDER_KEYS}
        if self._collection is CollectionMode.GATEWAY:
            return kept
        provider = {
            k: v
            for k, v in billing.items()
            if k in ("payment_provider_code", "provider_payment_methods")
        }
        kept.update(provider, payment_provider="stripe")
        if stripe_id:
            kept.update(provider_customer_id=stripe_id, sync_with_provider=False)
        else:
            # Nothing to link: Lago's integration creates the Stripe customer (as Lago would).
            kept.update(sync_with_provider=billing.get("sync_with_provider", True))
            if "sync" in billing:
                kept["sync"] = billing["sync"]
        return kept

    async def get(self, external_id: str) -> dict[str, Any]:
        """``GET /customers/{external_id}`` as Lago answers it."""
        return await read(self._lago, f"/customers/{segment(external_id)}")

    async def index(self, params: Params) -> dict[str, Any]:
        """``GET /customers`` with Lago's filters and pagination."""
        return await read(self._lago, "/customers", params)

    async def delete(self, external_id: str, actor: str) -> dict[str, Any]:
        """Delete in Lago (its subscriptions end); the Stripe customer and link stay."""
        change = Write(actor, "customers.delete", external_id)
        path = f"/customers/{segment(external_id)}"
        return await write(self._database, self._lago, change, "DELETE", path)

    async def listing(self, external_id: str, name: str, params: Params) -> dict[str, Any]:
        """One of Lago's lists nested under the customer (``/customers/{id}/{name}``)."""
        return await read(self._lago, f"/customers/{segment(external_id)}/{name}", params)

    async def payment_methods(
        self, external_id: str, params: Params, stripe: StripeClient | None
    ) -> dict[str, Any]:
        """Lago's list; when the gateway collects, the linked Stripe customer's methods
        in Lago's shape (``payment_methods.py``)."""
        answer = await self.listing(external_id, "payment_methods", params)
        if self._collection is not CollectionMode.GATEWAY or stripe is None:
            return answer
        found = await payment_methods.stripe_methods(self._database, stripe, external_id)
        return answer if found is None else payment_methods.page(found, params)

    async def checkout_url(self, external_id: str, actor: str) -> dict[str, Any]:
        """Lago's checkout link (collection ``lago`` only: Lago's Stripe integration)."""
        change = Write(actor, "customers.checkout_url", external_id)
        if self._collection is CollectionMode.GATEWAY:
            raise await refuse(self._database, change, unserved.checkout_url(external_id))
        path = f"/customers/{segment(external_id)}/checkout_url"
        return await write(self._database, self._lago, change, "POST", path)

    async def current_usage(self, external_id: str, params: Params) -> dict[str, Any]:
        """Current usage; without ``external_subscription_id`` the one active subscription's."""
        subscription = next((v for k, v in params if k == "external_subscription_id" and v), None)
        rest = [(k, v) for k, v in params if k != "external_subscription_id"]
        if subscription is None:
            subscription = await self._only_active_subscription(external_id)
        path = f"/customers/{segment(external_id)}/current_usage"
        return await read(self._lago, path, [("external_subscription_id", subscription), *rest])

    async def _only_active_subscription(self, external_id: str) -> str:
        query = [("external_customer_id", external_id), ("status[]", "active")]
        found = (await read(self._lago, "/subscriptions", query)).get("subscriptions") or []
        if len(found) == 1:
            return str(found[0]["external_id"])
        if not found:
            await self.get(external_id)  # an unknown customer is Lago's 404
            reason = "no_active_subscription"
        else:
            reason = "several_active_subscriptions"
        raise ValidationFailed(details={"external_subscription_id": [reason]})


def _keep_link(external_id: str, stripe_id: str | None) -> Then:
    """Store Lago's id (and the Stripe id Lago may have created) with the success audit row."""

    async def keep(session: AsyncSession, answer: dict[str, Any]) -> None:
        customer = answer.get("customer") or {}
        lago_billing = customer.get("billing_configuration") or {}
        await store.save(
            session,
            external_id,
            lago_customer_id=customer.get("lago_id"),
            stripe_customer_id=stripe_id or lago_billing.get("provider_customer_id"),
        )

    return keep
