"""A stateful fake Stripe at the HTTP transport, for collection tests.

What the gateway's collection calls, with Stripe's object shapes for ``API_VERSION``:
customers (default payment method), payment methods, PaymentIntents (off-session confirm,
card declines as 402 ``card_error`` carrying the PaymentIntent, cancel, list), Checkout
Sessions (payment and setup modes, expire), SetupIntents, billing portal sessions,
refunds, disputes.

Every request, answer and event is checked against Stripe's published OpenAPI spec for
``API_VERSION`` (``tests/support/stripe_contract.py``): a request Stripe would not accept
is answered 400 and fails the test, so does an answer or event missing a field the spec
requires. Every POST must carry an ``Idempotency-Key`` the gateway derived (not the SDK's
random one).

Behaviour follows Stripe's documentation:

- Idempotency (https://docs.stripe.com/api/idempotent_requests): the same key and
  parameters replay the first answer (``Idempotent-Replayed: true``) without side effects;
  other parameters are a 400 ``idempotency_error``. A request refused before the endpoint
  ran (unknown parameters) saves no result.
- PaymentIntents (https://docs.stripe.com/payments/paymentintents/lifecycle): created
  ``requires_confirmation`` with a payment method; confirming moves it to ``succeeded``,
  ``processing`` (then ``succeeded``), ``requires_action``, or back to
  ``requires_payment_method`` with ``last_payment_error`` on a decline (answered 402,
  https://docs.stripe.com/error-codes#card-declined). Cancel works until it succeeded
  (https://docs.stripe.com/api/payment_intents/cancel). Since 2023-08-16 a confirm needs
  ``return_url`` unless ``off_session=true``
  (https://docs.stripe.com/changelog/2023-08-16/automatic-payment-methods).
- Checkout Sessions (https://docs.stripe.com/api/checkout/sessions/expire): only an
  ``open`` session can be expired.
- Refunds (https://docs.stripe.com/refunds#refund-statuses,
  https://docs.stripe.com/api/refunds/object): card refunds succeed at once; never more
  than the charge's unrefunded amount.
- Disputes (https://docs.stripe.com/disputes/how-disputes-work): opened as
  ``needs_response`` (``charge.dispute.created``), closed ``won`` or ``lost``
  (``charge.dispute.closed``).

Every change records an event (``events``), signed on demand exactly as Stripe signs
webhooks (``Stripe-Signature: t=<ts>,v1=<hex hmac_sha256(secret, f"{t}.{body}")>``,
https://docs.stripe.com/webhooks#verify-manually).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson

from tests.support.stripe_contract import ContractCheck, StripeContractViolation, decode_form

API_KEY = "sk_test_collection"
WEBHOOK_SECRET = "whsec_collection_test_secret"
API_VERSION = "2023-08-16"  # the version of Stripe's spec the fake is checked against
_ids = itertools.count(1)

# Test cards, by what they do when charged off-session.
SUCCEED = "succeed"
DECLINE = "decline"
INSUFFICIENT = "insufficient_funds"
AUTHENTICATE = "authentication_required"
REQUIRES_ACTION = "requires_action"
PROCESSING = "processing"  # settles later (bank debits): see ``finish_processing``


def new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}{secrets.token_hex(5)}"


class StripeFailure(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        self.status = status
        self.error = error


def _missing(kind: str, object_id: str) -> StripeFailure:
    return StripeFailure(
        404,
        {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": f"No such {kind}: '{object_id}'",
            "param": "id",
        },
    )


class FakeStripe(httpx.AsyncBaseTransport):
    """Stripe in memory. Tests read the dicts and use the helpers to act as the customer."""

    def __init__(self, api_key: str = API_KEY, webhook_secret: str = WEBHOOK_SECRET) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.checkout_sessions: dict[str, dict[str, Any]] = {}
        self.setup_intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.portal_sessions: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.posts: list[tuple[str, str | None]] = []  # (path, Idempotency-Key) of each POST
        self.behaviour: dict[str, str] = {}  # payment method → what charging it does
        self.down = False
        self.unreachable_paths: set[str] = set()  # regexes: these requests fail to connect
        # Called after a PaymentIntent is stored and before its answer leaves (crash tests).
        self.after_intent_created: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._replays: dict[str, tuple[str, int, bytes]] = {}
        self.contract = ContractCheck()

    # ---- the test's side ----------------------------------------------------------------

    def add_customer(self, email: str | None = None) -> str:
        customer_id = new_id("cus")
        self.customers[customer_id] = {
            "id": customer_id,
            "object": "customer",
            "email": email,
            "name": None,
            "metadata": {},
            "livemode": False,
            "created": int(time.time()),
            "invoice_settings": {
                "default_payment_method": None,
                "custom_fields": None,
                "footer": None,
                "rendering_options": None,
            },
        }
        return customer_id

    def add_card(self, customer_id: str, behaviour: str = SUCCEED, default: bool = True) -> str:
        method_id = new_id("pm")
        last4 = {
            SUCCEED: "4242",
            DECLINE: "0002",
            INSUFFICIENT: "9995",
            AUTHENTICATE: "3184",
            REQUIRES_ACTION: "3155",
            PROCESSING: "3000",
        }[behaviour]
        self.payment_methods[method_id] = {
            "id": method_id,
            "object": "payment_method",
            "type": "card",
            "customer": customer_id,
            "created": int(time.time()),
            "livemode": False,
            "billing_details": {"address": None, "email": None, "name": None, "phone": None},
            "card": {
                "brand": "visa",
                "checks": None,
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "fingerprint": f"fp{last4}",
                "funding": "credit",
                "generated_from": None,
                "last4": last4,
                "networks": {"available": ["visa"], "preferred": None},
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            },
            "metadata": {},
        }
        self.behaviour[method_id] = behaviour
        if default:
            self.customers[customer_id]["invoice_settings"]["default_payment_method"] = method_id
        return method_id

    def intents_for(self, invoice_id: str) -> list[dict[str, Any]]:
        return [
            i
            for i in self.payment_intents.values()
            if i["metadata"].get("lago_invoice_id") == invoice_id
        ]

    def succeeded_charges(self, invoice_id: str) -> int:
        return sum(1 for i in self.intents_for(invoice_id) if i["status"] == "succeeded")

    def complete_checkout(self, session_id: str, behaviour: str = SUCCEED) -> dict[str, Any]:
        """The customer pays (payment mode) or saves a card (setup mode) on the page."""
        session = self.checkout_sessions[session_id]
        assert session["status"] == "open", session["status"]
        method = self.add_card(session["customer"], behaviour, default=False)
        if session["mode"] == "setup":
            intent = self._setup_intent(session, method)
            session.update(
                status="complete", setup_intent=intent["id"], payment_status="no_payment_required"
            )
        else:
            data = session["_payment_intent_data"]
            intent = self._new_intent(
                {
                    "amount": session["amount_total"],
                    "currency": session["currency"],
                    "customer": session["customer"],
                    "payment_method": method,
                    "metadata": data.get("metadata", {}),
                    "setup_future_usage": data.get("setup_future_usage"),
                }
            )
            self._charge(intent, behaviour)
            paid = intent["status"] == "succeeded"
            session.update(
                payment_intent=intent["id"],
                status="complete" if paid else "open",
                payment_status="paid" if paid else "unpaid",
            )
        if session["status"] == "complete":
            self._event("checkout.session.completed", session)
        return session

    def expire_checkout(self, session_id: str) -> None:
        session = self.checkout_sessions[session_id]
        if session["status"] == "open":
            session["status"] = "expired"
            self._event("checkout.session.expired", session)

    def open_dispute(self, intent_id: str, status: str = "needs_response") -> str:
        intent = self.payment_intents[intent_id]
        dispute_id = new_id("dp")
        self.disputes[dispute_id] = {
            "id": dispute_id,
            "object": "dispute",
            "amount": intent["amount"],
            "currency": intent["currency"],
            "charge": intent["latest_charge"],
            "payment_intent": intent_id,
            "reason": "fraudulent",
            "status": status,
            "balance_transactions": [],
            "evidence": dict.fromkeys(_EVIDENCE_FIELDS),
            "evidence_details": {
                "due_by": int(time.time()) + 7 * 86400,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
            "is_charge_refundable": False,
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
        }
        self._event("charge.dispute.created", self.disputes[dispute_id])
        return dispute_id

    def close_dispute(self, dispute_id: str, status: str) -> None:
        self.disputes[dispute_id]["status"] = status
        self._event("charge.dispute.closed", self.disputes[dispute_id])

    def signed(self, event: dict[str, Any], at: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers Stripe posts for ``event``."""
        body = orjson.dumps(event)
        stamp = at or int(time.time())
        mac = hmac.new(
            self.webhook_secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        return body, {"Stripe-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"}

    # ---- the wire -------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        await asyncio.sleep(0)
        if self.down or any(re.fullmatch(p, request.url.path) for p in self.unreachable_paths):
            raise httpx.ConnectError("connection refused", request=request)
        method, path = request.method, request.url.path
        if method == "POST":
            self.posts.append((path, request.headers.get("idempotency-key")))
        try:
            self.contract.request(method, path, request.headers, request.url.query.decode(), body)
            self.contract.derived_key(method, path, request.headers.get("idempotency-key"))
        except StripeContractViolation as exc:
            # Stripe refuses what its API does not define; the test fails on the record.
            error = {"type": "invalid_request_error", "message": str(exc)[:500]}
            return self._answer(400, {"error": error})
        response = await self._handle(request, body)
        self.contract.response(method, path, response.status_code, await response.aread())
        return response

    async def _handle(self, request: httpx.Request, body: bytes) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._answer(
                401,
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}},
            )
        pairs = parse_qsl(
            body.decode() if request.method == "POST" else request.url.query.decode(),
            keep_blank_values=True,
        )
        params = decode_form(pairs)
        path = request.url.path
        self.requests.append((request.method, path, params))
        key = request.headers.get("idempotency-key")
        if request.method == "POST" and key:
            fingerprint = hashlib.sha256(f"{path}\x00{sorted(pairs)}".encode()).hexdigest()
            if key in self._replays:
                seen, status, content = self._replays[key]
                if seen != fingerprint:
                    return self._answer(
                        400,
                        {
                            "error": {
                                "type": "idempotency_error",
                                "message": "Keys for idempotent requests can only be used with the "
                                "same parameters they were first used with.",
                            }
                        },
                    )
                return httpx.Response(
                    status,
                    content=content,
                    headers={"Content-Type": "application/json", "Idempotent-Replayed": "true"},
                )
        try:
            status, answer = 200, await self._route(request.method, path, params)
        except StripeFailure as failure:
            status, answer = failure.status, {"error": failure.error}
        content = orjson.dumps(answer)
        if request.method == "POST" and key:
            self._replays[key] = (fingerprint, status, content)
        if path == "/v1/payment_intents" and request.method == "POST" and self.after_intent_created:
            await self.after_intent_created(answer.get("error", {}).get("payment_intent") or answer)
        return httpx.Response(status, content=content, headers={"Content-Type": "application/json"})

    def _answer(self, status: int, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(
            status, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
        )

    async def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        routes = [
            ("POST", r"/v1/customers", self._create_customer),
            ("GET", r"/v1/customers/([^/]+)", self._get_customer),
            ("POST", r"/v1/customers/([^/]+)", self._update_customer),
            ("GET", r"/v1/customers/([^/]+)/payment_methods", self._customer_methods),
            ("GET", r"/v1/payment_methods/([^/]+)", self._get_method),
            ("POST", r"/v1/payment_intents", self._create_intent),
            ("GET", r"/v1/payment_intents", self._list_intents),
            ("GET", r"/v1/payment_intents/([^/]+)", self._get_intent),
            ("POST", r"/v1/payment_intents/([^/]+)/cancel", self._cancel_intent),
            ("POST", r"/v1/checkout/sessions", self._create_session),
            ("GET", r"/v1/checkout/sessions/([^/]+)", self._get_session),
            ("POST", r"/v1/checkout/sessions/([^/]+)/expire", self._expire_session),
            ("GET", r"/v1/setup_intents/([^/]+)", self._get_setup_intent),
            ("POST", r"/v1/billing_portal/sessions", self._create_portal),
            ("POST", r"/v1/refunds", self._create_refund),
            ("GET", r"/v1/disputes/([^/]+)", self._get_dispute),
        ]
        for verb, pattern, handler in routes:
            found = re.fullmatch(pattern, path)
            if verb == method and found:
                result: dict[str, Any] = handler(*found.groups(), params)  # type: ignore[operator]
                return _public(result)
        raise StripeFailure(
            404,
            {
                "type": "invalid_request_error",
                "message": f"Unrecognized request URL ({method} {path})",
            },
        )

    # ---- endpoints --------------------------------------------------------------------

    def _create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer_id = self.add_customer(params.get("email"))
        self.customers[customer_id].update(
            name=params.get("name"), metadata=params.get("metadata", {})
        )
        self._event("customer.created", self.customers[customer_id])
        return self.customers[customer_id]

    def _get_customer(self, customer_id: str, params: dict[str, Any]) -> dict[str, Any]:
        if customer_id not in self.customers:
            raise _missing("customer", customer_id)
        return self.customers[customer_id]

    def _update_customer(self, customer_id: str, params: dict[str, Any]) -> dict[str, Any]:
        customer = self._get_customer(customer_id, params)
        method = (params.get("invoice_settings") or {}).get("default_payment_method")
        if method is not None:
            if method not in self.payment_methods:
                raise _missing("PaymentMethod", method)
            customer["invoice_settings"]["default_payment_method"] = method
            self._event("customer.updated", customer)
        return customer

    def _customer_methods(self, customer_id: str, params: dict[str, Any]) -> dict[str, Any]:
        self._get_customer(customer_id, params)
        found = [m for m in self.payment_methods.values() if m["customer"] == customer_id]
        found.sort(key=lambda m: m["created"], reverse=True)
        return _list(
            found[: int(params.get("limit", 10))], f"/v1/customers/{customer_id}/payment_methods"
        )

    def _get_method(self, method_id: str, params: dict[str, Any]) -> dict[str, Any]:
        if method_id not in self.payment_methods:
            raise _missing("PaymentMethod", method_id)
        return self.payment_methods[method_id]

    def _create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("customer") not in self.customers:
            raise _missing("customer", str(params.get("customer")))
        if params.get("payment_method") not in self.payment_methods:
            raise _missing("PaymentMethod", str(params.get("payment_method")))
        confirm, off_session = params.get("confirm") == "true", params.get("off_session") == "true"
        if confirm and not off_session and not params.get("return_url"):
            raise StripeFailure(
                400,
                {
                    "type": "invalid_request_error",
                    "code": "parameter_missing",
                    "param": "return_url",
                    "message": "A return_url must be specified when confirming a PaymentIntent "
                    "with automatic_payment_methods enabled.",
                },
            )
        intent = self._new_intent(params)
        if confirm:
            self._charge(
                intent,
                self.behaviour[intent["payment_method"]],
                off_session=params.get("off_session") == "true",
            )
            if intent["last_payment_error"] is not None:
                raise StripeFailure(
                    402,
                    {
                        **copy.deepcopy(intent["last_payment_error"]),
                        "payment_intent": _public(intent),
                    },
                )
        return intent

    def _list_intents(self, params: dict[str, Any]) -> dict[str, Any]:
        since = int((params.get("created") or {}).get("gte", 0))
        found = [
            i
            for i in self.payment_intents.values()
            if i["customer"] == params.get("customer") and i["created"] >= since
        ]
        return _list(sorted(found, key=lambda i: i["created"], reverse=True), "/v1/payment_intents")

    def _get_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        if intent_id not in self.payment_intents:
            raise _missing("payment_intent", intent_id)
        intent = copy.deepcopy(self.payment_intents[intent_id])
        if "latest_charge" in (params.get("expand") or []) and intent["latest_charge"]:
            intent["latest_charge"] = self.charges[intent["latest_charge"]]
        return intent

    def _cancel_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.payment_intents.get(intent_id)
        if intent is None:
            raise _missing("payment_intent", intent_id)
        if intent["status"] in ("succeeded", "canceled", "processing"):
            raise StripeFailure(
                400,
                {
                    "type": "invalid_request_error",
                    "code": "payment_intent_unexpected_state",
                    "message": "You cannot cancel this PaymentIntent because it has a status of "
                    f"{intent['status']}.",
                },
            )
        intent.update(status="canceled", canceled_at=int(time.time()))
        self._event("payment_intent.canceled", intent)
        return intent

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session_id = new_id("cs_test")
        mode = params["mode"]
        item = (params.get("line_items") or [{}])[0]
        price = item.get("price_data") or {}
        self.checkout_sessions[session_id] = {
            "id": session_id,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid",
            "customer": params.get("customer"),
            "customer_email": params.get("customer_email"),
            "client_reference_id": params.get("client_reference_id"),
            "amount_total": int(price.get("unit_amount", 0)) * int(item.get("quantity", 1) or 1),
            "currency": price.get("currency"),
            "metadata": params.get("metadata", {}),
            "payment_intent": None,
            "setup_intent": None,
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "automatic_tax": {"enabled": False, "status": None},
            "custom_fields": [],
            "custom_text": {"shipping_address": None, "submit": None},
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "shipping_options": [],
            "expires_at": int(time.time()) + 24 * 3600,
            "created": int(time.time()),
            "livemode": False,
            "_payment_intent_data": params.get("payment_intent_data") or {},
            "_setup_intent_data": params.get("setup_intent_data") or {},
        }
        return self.checkout_sessions[session_id]

    def _get_session(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        if session_id not in self.checkout_sessions:
            raise _missing("checkout.session", session_id)
        return self.checkout_sessions[session_id]

    def _expire_session(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        session = self._get_session(session_id, params)
        if session["status"] != "open":
            raise StripeFailure(
                400,
                {
                    "type": "invalid_request_error",
                    "code": "checkout_session_unexpected_state",
                    "message": f"This Checkout Session is already {session['status']}.",
                },
            )
        self.expire_checkout(session_id)
        return session

    def _get_setup_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        if intent_id not in self.setup_intents:
            raise _missing("setup_intent", intent_id)
        return self.setup_intents[intent_id]

    def _create_portal(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("customer") not in self.customers:
            raise _missing("customer", str(params.get("customer")))
        session_id = new_id("bps")
        self.portal_sessions[session_id] = {
            "id": session_id,
            "object": "billing_portal.session",
            "customer": params["customer"],
            "return_url": params.get("return_url"),
            "configuration": "bpc_fake_default",  # the account's default portal configuration
            "flow": None,
            "locale": None,
            "on_behalf_of": None,
            "created": int(time.time()),
            "livemode": False,
            "url": f"https://billing.stripe.com/p/session/test_{session_id}",
        }
        return self.portal_sessions[session_id]

    def _create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.payment_intents.get(str(params.get("payment_intent")))
        if intent is None or intent["status"] != "succeeded":
            raise StripeFailure(
                400,
                {
                    "type": "invalid_request_error",
                    "code": "charge_not_refundable",
                    "message": "This PaymentIntent has no successful charge.",
                },
            )
        charge = self.charges[intent["latest_charge"]]
        amount = int(params.get("amount") or charge["amount"] - charge["amount_refunded"])
        if amount > charge["amount"] - charge["amount_refunded"]:
            raise StripeFailure(
                400,
                {
                    "type": "invalid_request_error",
                    "code": "charge_already_refunded",
                    "message": "Refund amount is greater than unrefunded amount.",
                },
            )
        refund_id = new_id("re")
        self.refunds[refund_id] = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "payment_intent": intent["id"],
            "currency": charge["currency"],
            "metadata": params.get("metadata", {}),
            "status": "succeeded",
            "created": int(time.time()),
            "reason": None,
        }
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self._event("charge.refunded", charge)
        self._event("refund.created", self.refunds[refund_id])
        return self.refunds[refund_id]

    def _get_dispute(self, dispute_id: str, params: dict[str, Any]) -> dict[str, Any]:
        if dispute_id not in self.disputes:
            raise _missing("dispute", dispute_id)
        return self.disputes[dispute_id]

    # ---- behaviour ----------------------------------------------------------------------

    def _new_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        intent_id = new_id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(params["amount"]),
            "amount_received": 0,
            "currency": params["currency"],
            "customer": params.get("customer"),
            "payment_method": params.get("payment_method"),
            "description": params.get("description"),
            "metadata": params.get("metadata", {}),
            "status": "requires_confirmation",
            "last_payment_error": None,
            "latest_charge": None,
            "next_action": None,
            "canceled_at": None,
            "capture_method": "automatic",
            "confirmation_method": "automatic",
            "setup_future_usage": params.get("setup_future_usage"),
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
            "created": int(time.time()),
            "livemode": False,
            "payment_method_types": ["card"],
        }
        self.payment_intents[intent_id] = intent
        self._event("payment_intent.created", intent)
        return intent

    def finish_processing(self, intent_id: str) -> None:
        """A processing payment settles (its events are recorded like any other)."""
        self._charge(self.payment_intents[intent_id], SUCCEED)

    def _charge(self, intent: dict[str, Any], behaviour: str, off_session: bool = True) -> None:
        if behaviour == PROCESSING:
            intent.update(status="processing")
            self._event("payment_intent.processing", intent)
            return
        if behaviour == REQUIRES_ACTION:
            intent.update(
                status="requires_action",
                next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {}},
            )
            self._event("payment_intent.requires_action", intent)
            return
        if behaviour == SUCCEED:
            charge_id = new_id("ch")
            self.charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "amount": intent["amount"],
                "amount_captured": intent["amount"],
                "amount_refunded": 0,
                "refunded": False,
                "currency": intent["currency"],
                "customer": intent["customer"],
                "payment_intent": intent["id"],
                "payment_method": intent["payment_method"],
                "paid": True,
                "captured": True,
                "status": "succeeded",
                "disputed": False,
                "livemode": False,
                "billing_details": {"address": None, "email": None, "name": None, "phone": None},
                "created": int(time.time()),
                "metadata": intent["metadata"],
            }
            intent.update(
                status="succeeded", amount_received=intent["amount"], latest_charge=charge_id
            )
            self._event("charge.succeeded", self.charges[charge_id])
            self._event("payment_intent.succeeded", intent)
            return
        code, decline = {
            DECLINE: ("card_declined", "generic_decline"),
            INSUFFICIENT: ("card_declined", "insufficient_funds"),
            AUTHENTICATE: ("authentication_required", "authentication_required"),
        }[behaviour]
        message = {
            "card_declined": "Your card was declined.",
            "authentication_required": "Your card was declined. This transaction "
            "requires authentication.",
        }[code]
        intent.update(
            status="requires_payment_method",
            last_payment_error={
                "type": "card_error",
                "code": code,
                "decline_code": decline,
                "message": message,
                "payment_method": self.payment_methods[intent["payment_method"]],
            },
        )
        self._event("payment_intent.payment_failed", intent)

    def _setup_intent(self, session: dict[str, Any], method: str) -> dict[str, Any]:
        intent_id = new_id("seti")
        self.setup_intents[intent_id] = {
            "id": intent_id,
            "object": "setup_intent",
            "customer": session["customer"],
            "payment_method": method,
            "status": "succeeded",
            "usage": "off_session",
            "payment_method_types": ["card"],
            "metadata": session["_setup_intent_data"].get("metadata", {}),
            "created": int(time.time()),
            "livemode": False,
        }
        self._event("setup_intent.created", self.setup_intents[intent_id])
        self._event("setup_intent.succeeded", self.setup_intents[intent_id])
        return self.setup_intents[intent_id]

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": _public(copy.deepcopy(obj))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": f"req_{secrets.token_hex(7)}", "idempotency_key": None},
            "type": kind,
        }
        self.contract.event(event)
        self.events.append(event)


_EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _list(items: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return {"object": "list", "data": items, "has_more": False, "url": url}
