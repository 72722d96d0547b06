"""``create_app``: the emulator's route table, like Lago's ``/api/v1`` routes."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from . import control, customers, events, metrics, plans, subscriptions
from .contract import load_spec, missing_spec_reason
from .errors import LagoError, error_body
from .guard import Guard
from .http import error_response, ok
from .recorder import ContractRecorder
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


def _control_routes() -> list[BaseRoute]:
    return [
        Route("/health", control.health, methods=["GET"]),
        Route("/_emulator/stats", control.stats, methods=["GET"]),
        Route("/_emulator/faults", control.faults, methods=["POST"]),
        Route("/_emulator/reset", control.reset, methods=["POST"]),
        Route("/_emulator/events", control.events, methods=["GET"]),
    ]


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, answered in Lago's JSON error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return ok(error_body(status), status)


def _contract_middleware(state: EmulatorState, allow_nulls: bool) -> Middleware:
    spec = load_spec()
    if spec is None:
        raise FileNotFoundError(missing_spec_reason())
    violations = state.contract_violations
    return Middleware(ContractRecorder, spec=spec, violations=violations, allow_nulls=allow_nulls)


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
    app = Starlette(
        routes=[Mount("/api/v1", routes=_api_routes()), *_control_routes()],
        middleware=middleware,
        exception_handlers={LagoError: error_response, HTTPException: _http_error},
    )
    app.state.lago = lago_state
    return app
