"""``create_app``: the emulator's route table, like Lago's ``/api/v1`` routes."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from . import (
    add_ons,
    analytics,
    applied_coupons,
    control,
    coupons,
    credit_notes,
    customer_lists,
    customers,
    entitlements,
    events,
    fees,
    invoice_files,
    invoices,
    metrics,
    one_off_invoices,
    payments,
    plans,
    subscriptions,
    usage,
    wallet_endpoints,
    webhook_endpoints,
)
from .errors import LagoError, error_body
from .guard import Guard
from .http import error_response, ok
from .proxy import SERVER_SEND
from .state import EmulatorState

DEFAULT_API_KEY = "lago-emulator-key"


def _api_routes() -> list[BaseRoute]:
    return [
        Route("/events", events.create, methods=["POST"]),
        Route("/events", events.index, methods=["GET"]),
        Route("/events/batch", events.create_batch, methods=["POST"]),
        Route("/events/{transaction_id:path}", events.show, methods=["GET"]),
        Route("/customers", customers.create, methods=["POST"]),
        Route("/customers", customers.index, methods=["GET"]),
        Route("/customers/{external_id}", customers.show, methods=["GET"]),
        Route("/customers/{external_id}", customers.destroy, methods=["DELETE"]),
        Route("/subscriptions", subscriptions.create, methods=["POST"]),
        Route("/subscriptions", subscriptions.index, methods=["GET"]),
        Route("/subscriptions/{external_id}", subscriptions.show, methods=["GET"]),
        Route("/subscriptions/{external_id}", subscriptions.update, methods=["PUT"]),
        Route("/subscriptions/{external_id}", subscriptions.destroy, methods=["DELETE"]),
        Route("/billable_metrics", metrics.create, methods=["POST"]),
        Route("/billable_metrics", metrics.index, methods=["GET"]),
        Route("/billable_metrics/{code}", metrics.show, methods=["GET"]),
        Route("/billable_metrics/{code}", metrics.update, methods=["PUT"]),
        Route("/billable_metrics/{code}", metrics.destroy, methods=["DELETE"]),
        Route("/plans", plans.create, methods=["POST"]),
        Route("/plans", plans.index, methods=["GET"]),
        Route("/plans/{code}", plans.show, methods=["GET"]),
        Route("/plans/{code}", plans.update, methods=["PUT"]),
        Route("/plans/{code}", plans.destroy, methods=["DELETE"]),
    ]


def _billing_routes() -> list[BaseRoute]:
    customer = "/customers/{external_customer_id}"
    invoice = "/invoices/{lago_id}"
    return [
        Route(f"{customer}/current_usage", usage.current, methods=["GET"]),
        Route(f"{customer}/wallets", wallet_endpoints.customer_index, methods=["GET"]),
        Route(f"{customer}/applied_coupons", applied_coupons.customer_index, methods=["GET"]),
        Route(
            f"{customer}/applied_coupons/{{applied_coupon_id}}",
            applied_coupons.destroy,
            methods=["DELETE"],
        ),
        Route("/wallets", wallet_endpoints.create, methods=["POST"]),
        Route("/wallets", wallet_endpoints.index, methods=["GET"]),
        Route("/wallets/{lago_id}", wallet_endpoints.show, methods=["GET"]),
        Route("/wallets/{lago_id}", wallet_endpoints.update, methods=["PUT"]),
        Route("/wallets/{lago_id}", wallet_endpoints.destroy, methods=["DELETE"]),
        Route(
            "/wallets/{lago_id}/wallet_transactions", wallet_endpoints.transactions, methods=["GET"]
        ),
        Route("/wallet_transactions", wallet_endpoints.create_transactions, methods=["POST"]),
        Route("/coupons", coupons.create, methods=["POST"]),
        Route("/coupons", coupons.index, methods=["GET"]),
        Route("/coupons/{code}", coupons.show, methods=["GET"]),
        Route("/coupons/{code}", coupons.update, methods=["PUT"]),
        Route("/coupons/{code}", coupons.destroy, methods=["DELETE"]),
        Route("/applied_coupons", applied_coupons.create, methods=["POST"]),
        Route("/applied_coupons", applied_coupons.index, methods=["GET"]),
        Route("/invoices", invoices.index, methods=["GET"]),
        Route("/invoices", one_off_invoices.create, methods=["POST"]),
        Route(invoice, invoices.show, methods=["GET"]),
        Route(invoice, invoices.update, methods=["PUT"]),
        Route(f"{invoice}/refresh", invoices.refresh, methods=["PUT"]),
        Route(f"{invoice}/finalize", invoices.finalize_draft, methods=["PUT"]),
        Route(f"{invoice}/void", invoices.void, methods=["POST"]),
        Route(f"{invoice}/download", invoices.download, methods=["POST"]),
        Route(f"{invoice}/retry_payment", invoices.retry_payment, methods=["POST"]),
        Route(f"{invoice}/lose_dispute", invoices.lose_dispute, methods=["POST"]),
        Route(f"{invoice}/payment_url", one_off_invoices.payment_url, methods=["POST"]),
        Route("/webhook_endpoints", webhook_endpoints.create, methods=["POST"]),
        Route("/webhook_endpoints", webhook_endpoints.index, methods=["GET"]),
        Route("/webhook_endpoints/{lago_id}", webhook_endpoints.show, methods=["GET"]),
        Route("/webhook_endpoints/{lago_id}", webhook_endpoints.update, methods=["PUT"]),
        Route("/webhook_endpoints/{lago_id}", webhook_endpoints.destroy, methods=["DELETE"]),
        Route("/webhooks/json_public_key", webhook_endpoints.json_public_key, methods=["GET"]),
    ]


def _entitlement_routes() -> list[BaseRoute]:
    feature = "/features/{code}"
    plan = "/plans/{code}/entitlements"
    sub = "/subscriptions/{external_id}/entitlements"
    e = entitlements
    return [
        Route("/features", e.features_create, methods=["POST"]),
        Route("/features", e.features_index, methods=["GET"]),
        Route(feature, e.features_show, methods=["GET"]),
        Route(feature, e.features_update, methods=["PUT", "PATCH"]),
        Route(feature, e.features_destroy, methods=["DELETE"]),
        Route(
            f"{feature}/privileges/{{privilege_code}}",
            e.feature_privilege_destroy,
            methods=["DELETE"],
        ),
        Route(plan, e.plan_create, methods=["POST"]),
        Route(plan, e.plan_index, methods=["GET"]),
        Route(plan, e.plan_update, methods=["PATCH"]),
        Route(f"{plan}/{{feature_code}}", e.plan_show, methods=["GET"]),
        Route(f"{plan}/{{feature_code}}", e.plan_destroy, methods=["DELETE"]),
        Route(
            f"{plan}/{{feature_code}}/privileges/{{privilege_code}}",
            e.plan_privilege_destroy,
            methods=["DELETE"],
        ),
        Route(sub, e.subscription_index, methods=["GET"]),
        Route(sub, e.subscription_update, methods=["PATCH"]),
        Route(f"{sub}/{{feature_code}}", e.subscription_destroy, methods=["DELETE"]),
        Route(
            f"{sub}/{{feature_code}}/privileges/{{privilege_code}}",
            e.subscription_privilege_destroy,
            methods=["DELETE"],
        ),
    ]


def _module_routes() -> list[BaseRoute]:
    return [
        *_entitlement_routes(),
        *credit_notes.routes(),
        *payments.routes(),
        *customer_lists.routes(),
        *add_ons.routes(),
        *fees.routes(),
        *analytics.routes(),
    ]


def _control_routes() -> list[BaseRoute]:
    return [
        Route("/health", control.health, methods=["GET"]),
        Route("/_emulator/stats", control.stats, methods=["GET"]),
        Route("/_emulator/faults", control.faults, methods=["POST"]),
        Route("/_emulator/reset", control.reset, methods=["POST"]),
        Route("/_emulator/events", control.events, methods=["GET"]),
        Route("/_emulator/close_period", control.close_period, methods=["POST"]),
        Route(f"{invoice_files.FILES_PATH}/{{lago_id}}.pdf", invoice_files.pdf, methods=["GET"]),
        Route(
            "/_emulator/clock/recurring_transaction_rules",
            control.recurring_rules_clock,
            methods=["POST"],
        ),
    ]


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, answered in Lago's JSON error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return ok(error_body(status), status)


def _contract_middleware(state: EmulatorState, allow_nulls: bool) -> Middleware:
    # Imported here: openapi-core is a test dependency, and `gateway serve` runs the emulator
    # without it.
    from .contract import load_spec, missing_spec_reason
    from .recorder import ContractRecorder

    spec = load_spec()
    if spec is None:
        raise FileNotFoundError(missing_spec_reason())
    violations = state.contract_violations
    return Middleware(ContractRecorder, spec=spec, violations=violations, allow_nulls=allow_nulls)


class EmulatorApp(Starlette):
    """The emulator's Starlette app; keeps the server's own ``send`` in the scope, so a
    dropped-connection fault can reach the socket under it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SERVER_SEND] = send
        await super().__call__(scope, receive, send)


def create_app(
    state: EmulatorState | None = None,
    api_key: str = DEFAULT_API_KEY,
    *,
    validate: bool = False,
    allow_request_nulls: bool = False,
) -> Starlette:
    """An ASGI Lago emulator over ``state`` (a fresh one when omitted).

    ``validate=True`` checks every ``/api/v1`` request and response against Lago's OpenAPI
    spec and appends violations to ``state.contract_violations``; ``allow_request_nulls``
    tolerates the nulls Lago's SDKs send for unset fields.
    """
    lago_state = state if state is not None else EmulatorState()
    middleware = [Middleware(Guard, state=lago_state, api_key=api_key)]
    if validate:
        middleware.insert(0, _contract_middleware(lago_state, allow_request_nulls))
    app = EmulatorApp(
        routes=[
            Mount("/api/v1", routes=_api_routes() + _billing_routes() + _module_routes()),
            *_control_routes(),
        ],
        middleware=middleware,
        exception_handlers={LagoError: error_response, HTTPException: _http_error},
    )
    app.state.lago = lago_state
    return app
