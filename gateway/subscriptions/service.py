"""Subscriptions in Lago: create (a different plan on the same external id is Lago's plan
change: an upgrade at once, a downgrade at the end of the period), update, terminate, read."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.billing.passthrough import Params, Write, checked_write, read, refuse, segment, write
from gateway.billing.payloads import check
from gateway.catalog.schemas import Catalog
from gateway.db import Database
from gateway.errors import ValidationFailed
from gateway.integrations.lago.client import LagoClient
from gateway.logging import get_logger
from gateway.meters.service import Meters
from gateway.packs.grants import sync_customer
from gateway.subscriptions.schemas import (
    TERMINATION_QUERY,
    SubscriptionChanges,
    SubscriptionInput,
)
from gateway.usage.lookups import LagoLookups

log = get_logger(__name__)


class Subscriptions:
    """The subscriptions capability over Lago."""

    def __init__(
        self,
        database: Database,
        lago: LagoClient,
        lookups: LagoLookups,
        meters: Meters,
        catalog: Catalog | None = None,
    ) -> None:
        self._database = database
        self._lago = lago
        self._lookups = lookups
        self._meters = meters
        self._catalog = catalog

    async def create(self, params: dict[str, Any], actor: str) -> dict[str, Any]:
        """Create, keep (same plan), upgrade or schedule a downgrade, as Lago decides."""
        change = await checked_write(
            self._database, actor, "subscriptions.create", SubscriptionInput, params
        )
        change = Write(actor, change.action, change.target, {"plan_code": params["plan_code"]})

        async def learn(_: AsyncSession, answer: dict[str, Any]) -> None:
            # Usage validation knows the subscription at once (no wait for its cache).
            self._lookups.remember_subscription(params["external_id"])

        answer = await write(
            self._database,
            self._lago,
            change,
            "POST",
            "/subscriptions",
            json={"subscription": params},
            then=learn,
        )
        await self._learn_terms(answer)
        return answer

    async def update(
        self, external_id: str, params: dict[str, Any], query: Params, actor: str
    ) -> dict[str, Any]:
        """Update name, end date, start (pending only) or overrides; ``?status=`` picks one.

        The audit row names the fields cleared with ``null`` (``detail.cleared``)."""
        cleared = sorted(name for name, value in params.items() if value is None)
        detail = {"cleared": cleared} if cleared else None
        change = Write(actor, "subscriptions.update", external_id, detail)
        try:
            check(SubscriptionChanges, params)
            _check_query(query, ("status",))
        except ValidationFailed as exc:
            raise await refuse(self._database, change, exc) from exc
        path = f"/subscriptions/{segment(external_id)}"
        answer = await write(
            self._database,
            self._lago,
            change,
            "PUT",
            path,
            json={"subscription": params},
            params=query,
        )
        await self._learn_terms(answer)
        return answer

    async def terminate(self, external_id: str, query: Params, actor: str) -> dict[str, Any]:
        """Terminate (or cancel a pending one), with Lago's termination options."""
        change = Write(actor, "subscriptions.terminate", external_id)
        try:
            _check_query(query, tuple(TERMINATION_QUERY))
        except ValidationFailed as exc:
            raise await refuse(self._database, change, exc) from exc
        path = f"/subscriptions/{segment(external_id)}"
        answer = await write(self._database, self._lago, change, "DELETE", path, params=query)
        await self._learn_terms(answer)
        return answer

    async def _learn_terms(self, answer: dict[str, Any]) -> None:
        """After a change: meters learn the subscription's billing terms from Lago's answer,
        and the customer's token wallet gets its plan's recurring grant. Best effort: the
        write is done; the meters' reconciliation and the grants job catch up on a failure."""
        subscription = answer.get("subscription")
        if not isinstance(subscription, dict) or not subscription.get("external_id"):
            return
        try:
            await self._meters.adopt(subscription)
        except Exception as exc:
            log.warning("subscriptions.terms_not_stored", error=type(exc).__name__)
        customer = subscription.get("external_customer_id")
        if self._catalog is None or not isinstance(customer, str):
            return
        if not any(plan.token_grant for plan in self._catalog.plans):
            return
        try:
            await sync_customer(self._lago, self._catalog, customer)
        except Exception as exc:
            log.warning("subscriptions.grant_not_synced", error=type(exc).__name__)

    async def get(self, external_id: str, query: Params) -> dict[str, Any]:
        """One subscription (``?status=`` for a pending or terminated one)."""
        return await read(self._lago, f"/subscriptions/{segment(external_id)}", query)

    async def index(self, query: Params) -> dict[str, Any]:
        """Lago's list: ``external_customer_id``, ``plan_code``, ``status[]``, pagination."""
        return await read(self._lago, "/subscriptions", query)


def _check_query(query: Params, allowed: tuple[str, ...]) -> None:
    """Termination options and ``status`` take Lago's values only."""
    wrong = {
        name: ["value_is_invalid"]
        for name, value in query
        if name in allowed and value not in TERMINATION_QUERY[name]
    }
    if wrong:
        raise ValidationFailed(details=wrong)
