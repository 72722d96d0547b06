"""A fake Stripe API at the HTTP transport: Stripe's wire shapes, idempotency keys honoured.

Covers what the gateway calls: ``POST /v1/customers`` and ``GET /v1/customers/{id}``.
Like Stripe, a repeated ``Idempotency-Key`` with the same parameters replays the first
response (``Idempotent-Replayed: true``) and with other parameters is a 400
``idempotency_error``; the check and the store happen atomically, as Stripe's lock does
(https://docs.stripe.com/api/idempotent_requests). Every request and answer is checked
against Stripe's published spec for ``API_VERSION`` (``tests/support/stripe_contract.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson

from tests.support.stripe_contract import ContractCheck, StripeContractViolation

API_KEY = "sk_test_gateway"
API_VERSION = "2023-08-16"
_ids = itertools.count(1)


def customer_object(customer_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """A customer as Stripe's API returns it."""
    return {
        "id": customer_id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": int(time.time()),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": params.get("description"),
        "discount": None,
        "email": params.get("email"),
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": params.get("metadata", {}),
        "name": params.get("name"),
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def _error(status: int, error_type: str, message: str, **extra: Any) -> httpx.Response:
    body = {"error": {"type": error_type, "message": message, **extra}}
    return httpx.Response(status, content=orjson.dumps(body), headers=_headers())


def _headers(**extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Request-Id": f"req_{secrets.token_hex(7)}",
        "Stripe-Version": API_VERSION,
        **extra,
    }


def _form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding, ``metadata[key]=value`` folded into a dict."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        if key.startswith("metadata[") and key.endswith("]"):
            params.setdefault("metadata", {})[key[9:-1]] = value
        else:
            params[key] = value
    return params


class FakeStripe(httpx.AsyncBaseTransport):
    """Stripe's customers API in memory; ``down`` makes every request fail to connect."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.customers: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.down = False
        self._replays: dict[str, tuple[dict[str, Any], int, bytes]] = {}
        self.contract = ContractCheck()

    @property
    def creates(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.path == "/v1/customers"]

    def add_customer(self, email: str | None = None) -> str:
        """A customer that exists in Stripe before the test (to be adopted)."""
        customer_id = f"cus_pre{next(_ids):06d}"
        self.customers[customer_id] = customer_object(customer_id, {"email": email})
        return customer_id

    def delete_customer(self, customer_id: str) -> None:
        self.customers[customer_id] = {"id": customer_id, "object": "customer", "deleted": True}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append(request)
        await asyncio.sleep(0)  # let concurrent requests interleave, as on a network
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        method, path = request.method, request.url.path
        try:
            self.contract.request(method, path, request.headers, request.url.query.decode(), body)
        except StripeContractViolation as exc:
            return _error(400, "invalid_request_error", str(exc)[:500])
        response = self._handle(request, body)
        self.contract.response(method, path, response.status_code, await response.aread())
        return response

    def _handle(self, request: httpx.Request, body: bytes) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        path = request.url.path
        if request.method == "POST" and path == "/v1/customers":
            return self._idempotent(request, _form(body), self._create_customer)
        if request.method == "GET" and path.startswith("/v1/customers/"):
            return self._retrieve_customer(path.removeprefix("/v1/customers/"))
        return _error(404, "invalid_request_error", f"Unrecognized request URL ({path})")

    def _idempotent(
        self, request: httpx.Request, params: dict[str, Any], handler: Any
    ) -> httpx.Response:
        key = request.headers.get("idempotency-key")
        if key is None:
            return handler(params)  # type: ignore[no-any-return]
        replay = self._replays.get(key)
        if replay is not None:
            first_params, status, content = replay
            if first_params != params:
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                )
            return httpx.Response(
                status, content=content, headers=_headers(**{"Idempotent-Replayed": "true"})
            )
        response: httpx.Response = handler(params)
        self._replays[key] = (params, response.status_code, response.content)
        return response

    def _create_customer(self, params: dict[str, Any]) -> httpx.Response:
        customer_id = f"cus_{secrets.token_hex(7)}"
        customer = customer_object(customer_id, params)
        self.customers[customer_id] = customer
        return httpx.Response(200, content=orjson.dumps(customer), headers=_headers())

    def _retrieve_customer(self, customer_id: str) -> httpx.Response:
        customer = self.customers.get(customer_id)
        if customer is None:
            return _error(
                404,
                "invalid_request_error",
                f"No such customer: '{customer_id}'",
                code="resource_missing",
                param="id",
                doc_url="https://stripe.com/docs/error-codes/resource-missing",
            )
        return httpx.Response(200, content=orjson.dumps(customer), headers=_headers())
