"""What Lago knows, cached: metric codes, subscriptions, a customer's one active subscription.

Answers are three-valued: known, unknown, or "cannot tell" (Lago unreachable), in which case
the event is accepted and checked again before it is forwarded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from gateway.integrations.lago.client import LagoApiError, LagoClient, LagoError, LagoUnavailable
from gateway.usage.parsing import MetricRule

METRICS_REFRESH_SECONDS = 2.0
KNOWN_TTL = 600.0
UNKNOWN_TTL = 2.0
# While Lago struggles, acceptance must not wait on it: a lookup answers "cannot tell" after
# LOOKUP_WAIT_SECONDS (the fetch goes on and fills the cache), and a failed lookup is not
# tried again for UNSURE_TTL, so one slow Lago call is not paid by every request.
LOOKUP_WAIT_SECONDS = 1.0
UNSURE_TTL = 1.0


class Known(Enum):
    YES = "yes"
    NO = "no"
    UNSURE = "unsure"


class LagoLookups:
    """Cached, single-flight lookups against Lago for event validation."""

    def __init__(self, lago: LagoClient) -> None:
        self._lago = lago
        self._metric_codes: set[str] = set()
        self._metrics_fetched_at = -1e9
        self._metrics_failed_at = -1e9
        self._metrics_refresh: asyncio.Task[bool] | None = None
        self._subscriptions: dict[str, tuple[float, Known]] = {}
        self._customers: dict[str, tuple[float, str | None, str | None]] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        # The catalog can add codes Lago does not list yet (and pin what the gateway accepts).
        self.extra_metric_codes: set[str] = set()
        # When a catalog is loaded: a code must be in it as well as known to Lago.
        self.allowed_codes: set[str] | None = None
        # The catalog's metrics that aggregate a property: what their events must carry.
        self.metric_rules: dict[str, MetricRule] = {}

    async def metric(self, code: str) -> Known:
        """Whether ``code`` is a billable metric (refreshing the list on a miss)."""
        if self.allowed_codes is not None and code not in self.allowed_codes:
            return Known.NO
        if code in self._metric_codes or code in self.extra_metric_codes:
            return Known.YES
        if time.monotonic() - self._metrics_fetched_at < METRICS_REFRESH_SECONDS:
            return Known.NO
        if time.monotonic() - self._metrics_failed_at < UNSURE_TTL:
            return Known.UNSURE
        if self._metrics_refresh is None or self._metrics_refresh.done():
            self._metrics_refresh = asyncio.ensure_future(self._refresh_metrics())
        try:
            refreshed = await asyncio.wait_for(
                asyncio.shield(self._metrics_refresh), LOOKUP_WAIT_SECONDS
            )
        except TimeoutError:
            return Known.UNSURE
        if not refreshed:
            return Known.UNSURE
        return Known.YES if code in self._metric_codes else Known.NO

    async def _refresh_metrics(self) -> bool:
        codes: set[str] = set()
        page = 1
        try:
            while True:
                body = await self._lago.call(
                    "GET", "/billable_metrics", params={"page": page, "per_page": 100}
                )
                codes.update(m["code"] for m in body.get("billable_metrics", []))
                next_page = (body.get("meta") or {}).get("next_page")
                if not next_page:
                    break
                page = int(next_page)
        except LagoError:
            self._metrics_failed_at = time.monotonic()
            return False
        self._metric_codes = codes
        self._metrics_fetched_at = time.monotonic()
        return True

    def cached_subscription(self, external_id: str) -> Known | None:
        """The cached answer for a subscription, without asking Lago (None: not cached)."""
        cached = self._subscriptions.get(external_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    async def subscription(self, external_id: str) -> Known:
        """Whether Lago knows a subscription with this external id."""
        cached = self.cached_subscription(external_id)
        if cached is not None:
            return cached
        try:
            answer: Known = await self._single_flight(
                f"s:{external_id}", lambda: self._fetch_sub(external_id)
            )
        except TimeoutError:
            return Known.UNSURE
        return answer

    async def _fetch_sub(self, external_id: str) -> Known:
        try:
            await self._lago.call("GET", f"/subscriptions/{_quote(external_id)}")
            answer = Known.YES
        except LagoApiError as exc:
            answer = Known.NO if exc.status == 404 else Known.UNSURE
        except LagoError:
            answer = Known.UNSURE
        ttl = {Known.YES: KNOWN_TTL, Known.NO: UNKNOWN_TTL, Known.UNSURE: UNSURE_TTL}[answer]
        self._subscriptions[external_id] = (time.monotonic() + ttl, answer)
        return answer

    def remember_subscription(self, external_id: str) -> None:
        """Record a subscription the gateway just saw Lago create."""
        self._subscriptions[external_id] = (time.monotonic() + KNOWN_TTL, Known.YES)

    async def active_subscription_of(self, customer_id: str) -> tuple[str | None, str | None]:
        """(subscription external id, None) or (None, reason); raises LagoError when unreachable."""
        cached = self._customers.get(customer_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], cached[2]
        try:
            return await self._single_flight(  # type: ignore[no-any-return]
                f"c:{customer_id}", lambda: self._fetch_active(customer_id)
            )
        except TimeoutError as exc:
            raise LagoUnavailable("lookup timed out") from exc

    async def _fetch_active(self, customer_id: str) -> tuple[str | None, str | None]:
        body = await self._lago.call(
            "GET",
            "/subscriptions",
            params=[("external_customer_id", customer_id), ("status[]", "active")],
        )
        subs = body.get("subscriptions", [])
        if len(subs) == 1:
            answer: tuple[str | None, str | None] = (str(subs[0]["external_id"]), None)
            ttl = KNOWN_TTL
        else:
            reason = "no_active_subscription" if not subs else "several_active_subscriptions"
            answer, ttl = (None, reason), UNKNOWN_TTL
        self._customers[customer_id] = (time.monotonic() + ttl, *answer)
        return answer

    async def _single_flight(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """One fetch per key at a time; callers wait at most LOOKUP_WAIT_SECONDS (TimeoutError)."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.wait_for(asyncio.shield(task), LOOKUP_WAIT_SECONDS)

    def _forget(self, key: str, done: asyncio.Future[Any]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
