"""The one place Stripe's API is called from: the official SDK, async only, explicit timeouts.

Every write takes an idempotency key derived from a local id, so a retry (the SDK's own, or
the caller's) can never create a second object. Errors come out as two types: Stripe
refused (``StripeRejected``, a 4xx with Stripe's code) or Stripe could not be reached or
failed (``StripeUnavailable``: connection errors, timeouts, 429 and 5xx, after the SDK's
retries).

    StripeError
    ├── StripeRejected        4xx: Stripe's ``type``, ``code``, ``param`` and message
    └── StripeUnavailable     unreachable, timed out, rate limited or 5xx
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import stripe

from gateway.integrations.stripe.sdk_logging import silence_sdk_logs

DEFAULT_API_BASE = "https://api.stripe.com"
# The Stripe API version the gateway is written and contract-tested for (docs/stripe.md).
# Sent on every request, so neither the account's default version nor the SDK's own pin
# can change the shape of what Stripe accepts and answers.
STRIPE_API_VERSION = "2023-08-16"


class StripeError(Exception):
    """Base of what the Stripe client raises."""


class StripeRejected(StripeError):
    """Stripe refused the request (4xx); ``code`` is Stripe's error code when it gave one."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(f"Stripe answered {status}: {code or error_type or message}")
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param


class StripeUnavailable(StripeError):
    """Stripe could not be reached, timed out, throttled or failed (after the SDK's retries)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class StripeCustomer:
    """The fields of a Stripe customer the gateway uses."""

    id: str
    email: str | None = None
    name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    livemode: bool = False


class _HTTPXClient(stripe.HTTPXClient):
    """Stripe's httpx client, with an optional transport (tests fake Stripe at the wire)."""

    def __init__(self, timeout: float, transport: httpx.AsyncBaseTransport | None) -> None:
        super().__init__(timeout=timeout)
        if transport is not None:
            # HTTPXClient builds its own AsyncClient and offers no transport argument.
            self._client_async = httpx.AsyncClient(transport=transport)

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> list[Any]:
        # The SDK passes the encoded form as ``data=``, which httpx 0.28 deprecates for
        # raw content (a DeprecationWarning per request); send it as ``content=``.
        args: list[Any] = super()._get_request_args_kwargs(method, url, headers, post_data)
        kwargs = args[1]
        body = kwargs.pop("data", None)
        if body:
            kwargs["content"] = body
        return args


class StripeClient:
    """Async client for Stripe's API through the official ``stripe`` package."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_API_BASE,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_network_retries: int = 2,
    ) -> None:
        silence_sdk_logs()
        http_client = _HTTPXClient(timeout, transport)
        self._http_client = http_client
        self._stripe = stripe.StripeClient(
            api_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": base_url.rstrip("/")},
            http_client=http_client,
            max_network_retries=max_network_retries,
        )

    async def aclose(self) -> None:
        await self._http_client.close_async()  # type: ignore[no-untyped-call]

    async def create_customer(
        self,
        *,
        external_id: str,
        idempotency_key: str,
        email: str | None = None,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> StripeCustomer:
        """Create a customer; the same ``idempotency_key`` always yields the same customer."""
        params: dict[str, Any] = {"metadata": {**(metadata or {}), "external_id": external_id}}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        customer = await self._call(
            self._stripe.v1.customers.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return _customer(customer)

    async def retrieve_customer(self, customer_id: str) -> StripeCustomer:
        """The customer; a deleted or unknown one is ``StripeRejected`` 404 ``resource_missing``."""
        customer = await self._call(self._stripe.v1.customers.retrieve_async(customer_id))
        if customer.to_dict().get("deleted"):
            raise StripeRejected(
                404,
                f"No such customer: '{customer_id}' (deleted)",
                error_type="invalid_request_error",
                code="resource_missing",
                param="id",
            )
        return _customer(customer)

    # ---- Collection: payments, Checkout, billing portal, refunds (gateway/collection) ----
    # Added for the collection capability; everything returns Stripe's objects as plain dicts.

    async def create_payment_intent(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        """Create (and, with ``confirm``, charge) a PaymentIntent. A card decline is not an
        error here: Stripe's 402 carries the PaymentIntent, which is returned as is."""
        try:
            intent = await self._call(
                self._stripe.v1.payment_intents.create_async(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": idempotency_key},
                )
            )
        except StripeRejected as exc:
            embedded = _embedded_payment_intent(exc)
            if embedded is None:
                raise
            return embedded
        return _plain(intent)

    async def retrieve_payment_intent(
        self, intent_id: str, *, expand: list[str] | None = None
    ) -> dict[str, Any]:
        """The PaymentIntent as Stripe holds it now."""
        params: dict[str, Any] = {"expand": expand} if expand else {}
        return _plain(
            await self._call(
                self._stripe.v1.payment_intents.retrieve_async(
                    intent_id,
                    params=params,  # type: ignore[arg-type]
                )
            )
        )

    async def cancel_payment_intent(
        self, intent_id: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        """Cancel a PaymentIntent that has not succeeded (it can then never charge)."""
        return _plain(
            await self._call(
                self._stripe.v1.payment_intents.cancel_async(
                    intent_id, options={"idempotency_key": idempotency_key}
                )
            )
        )

    async def list_payment_intents(
        self, *, customer: str, created_gte: int, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The customer's PaymentIntents created since ``created_gte`` (one page, newest first)."""
        page = await self._call(
            self._stripe.v1.payment_intents.list_async(
                params={"customer": customer, "created": {"gte": created_gte}, "limit": limit}
            )
        )
        return [_plain(item) for item in page.data]

    async def list_payment_methods(
        self, customer_id: str, *, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The customer's saved payment methods (one page, newest first)."""
        page = await self._call(
            self._stripe.v1.customers.payment_methods.list_async(
                customer_id, params={"limit": limit}
            )
        )
        return [_plain(item) for item in page.data]

    async def retrieve_payment_method(self, method_id: str) -> dict[str, Any]:
        """A PaymentMethod (card brand, last4...)."""
        return _plain(await self._call(self._stripe.v1.payment_methods.retrieve_async(method_id)))

    async def default_payment_method(self, customer_id: str) -> str | None:
        """The customer's ``invoice_settings.default_payment_method``, else its newest card."""
        customer = _plain(await self._call(self._stripe.v1.customers.retrieve_async(customer_id)))
        settings = customer.get("invoice_settings") or {}
        method = settings.get("default_payment_method")
        if method:
            return str(method if isinstance(method, str) else method["id"])
        page = await self._call(
            self._stripe.v1.customers.payment_methods.list_async(customer_id, params={"limit": 1})
        )
        return str(page.data[0]["id"]) if page.data else None

    async def set_default_payment_method(
        self, customer_id: str, method_id: str, *, idempotency_key: str
    ) -> None:
        """Make ``method_id`` the customer's default for off-session charges."""
        await self._call(
            self._stripe.v1.customers.update_async(
                customer_id,
                params={"invoice_settings": {"default_payment_method": method_id}},
                options={"idempotency_key": idempotency_key},
            )
        )

    async def create_checkout_session(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        """A hosted Checkout page (``mode`` payment or setup)."""
        return _plain(
            await self._call(
                self._stripe.v1.checkout.sessions.create_async(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": idempotency_key},
                )
            )
        )

    async def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        return _plain(
            await self._call(self._stripe.v1.checkout.sessions.retrieve_async(session_id))
        )

    async def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        """Close an open Checkout page; a completed one answers 400 and stays complete."""
        return _plain(
            await self._call(
                self._stripe.v1.checkout.sessions.expire_async(
                    session_id, options={"idempotency_key": idempotency_key}
                )
            )
        )

    async def retrieve_setup_intent(self, intent_id: str) -> dict[str, Any]:
        return _plain(await self._call(self._stripe.v1.setup_intents.retrieve_async(intent_id)))

    async def create_portal_session(
        self, *, customer: str, return_url: str, idempotency_key: str
    ) -> dict[str, Any]:
        """A billing portal link (payment methods, invoices) for one customer."""
        return _plain(
            await self._call(
                self._stripe.v1.billing_portal.sessions.create_async(
                    params={"customer": customer, "return_url": return_url},
                    options={"idempotency_key": idempotency_key},
                )
            )
        )

    async def create_refund(
        self,
        *,
        payment_intent: str,
        amount: int,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Refund ``amount`` of a PaymentIntent's charge."""
        return _plain(
            await self._call(
                self._stripe.v1.refunds.create_async(
                    params={
                        "payment_intent": payment_intent,
                        "amount": amount,
                        "metadata": metadata,
                    },
                    options={"idempotency_key": idempotency_key},
                )
            )
        )

    async def retrieve_dispute(self, dispute_id: str) -> dict[str, Any]:
        return _plain(await self._call(self._stripe.v1.disputes.retrieve_async(dispute_id)))

    # ---- end of the collection section ----

    async def _call(self, request: Any) -> Any:
        try:
            return await request
        except stripe.APIConnectionError as exc:
            raise StripeUnavailable(
                f"unreachable: {exc.user_message or 'connection error'}"
            ) from exc
        except stripe.RateLimitError as exc:
            raise StripeUnavailable("rate limited", _retry_after(exc)) from exc
        except stripe.StripeError as exc:
            status = exc.http_status or 502
            if status >= 500:
                raise StripeUnavailable(f"Stripe answered {status}", _retry_after(exc)) from exc
            raise _rejected(status, exc) from exc


def _rejected(status: int, exc: stripe.StripeError) -> StripeRejected:
    error = exc.error
    return StripeRejected(
        status,
        exc.user_message or "Stripe refused the request",
        error_type=getattr(error, "type", None),
        code=exc.code,
        param=getattr(error, "param", None),
    )


def _retry_after(exc: stripe.StripeError) -> float | None:
    value = (exc.headers or {}).get("retry-after") or (exc.headers or {}).get("Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def _customer(obj: Any) -> StripeCustomer:
    customer = obj.to_dict()
    metadata = customer.get("metadata") or {}
    return StripeCustomer(
        id=str(customer["id"]),
        email=customer.get("email"),
        name=customer.get("name"),
        metadata={str(k): str(v) for k, v in metadata.items()},
        livemode=bool(customer.get("livemode", False)),
    )


# ---- Collection helpers (gateway/collection) ----


def _plain(obj: Any) -> dict[str, Any]:
    """A Stripe object as a plain dict (nested objects too)."""
    plain: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return plain


def _embedded_payment_intent(exc: StripeRejected) -> dict[str, Any] | None:
    """The PaymentIntent a card error carries (Stripe answers 402 for a declined charge)."""
    cause = exc.__cause__
    error = getattr(cause, "error", None)
    intent = getattr(error, "payment_intent", None) if error is not None else None
    return _plain(intent) if intent else None
