"""Lago's fees, read (``app/controllers/api/v1/fees_controller.rb#index``, ``#show``,
``app/queries/fees_query.rb``). The emulator's fees all belong to invoices; they are read
from there."""

from __future__ import annotations

from collections.abc import Iterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .errors import NotFound, invalid
from .http import ok, paginate, state_of
from .state import EmulatorState, Record

FEE_TYPES = ("charge", "add_on", "subscription", "credit", "commitment", "fixed_charge", "product")
PAYMENT_STATUSES = ("pending", "succeeded", "failed", "refunded")  # Fee::PAYMENT_STATUS


def all_fees(state: EmulatorState) -> Iterator[Record]:
    """Every fee of the organization (``Fee.from_organization``), oldest invoice first."""
    for invoice in state.invoices.values():
        yield from invoice["fees"]


def _wanted(request: Request) -> dict[str, str]:
    """FeesQuery's filters; an unknown ``fee_type`` or ``payment_status`` is 422."""
    query = request.query_params
    wanted = {
        name: query[name]
        for name in (
            "external_customer_id",
            "external_subscription_id",
            "currency",
            "fee_type",
            "payment_status",
            "created_at_from",
            "created_at_to",
        )
        if query.get(name)
    }
    if wanted.get("fee_type", "add_on") not in FEE_TYPES:
        raise invalid("fee_type")
    if wanted.get("payment_status", "pending") not in PAYMENT_STATUSES:
        raise invalid("payment_status")
    return wanted


def _matches(fee: Record, wanted: dict[str, str]) -> bool:
    checks = (
        wanted.get("external_customer_id", fee["external_customer_id"])
        == fee["external_customer_id"],
        wanted.get("external_subscription_id", fee["external_subscription_id"])
        == fee["external_subscription_id"],
        wanted.get("currency", str(fee["amount_currency"])).upper() == fee["amount_currency"],
        wanted.get("fee_type", fee["item"]["type"]) == fee["item"]["type"],
        wanted.get("payment_status", fee["payment_status"]) == fee["payment_status"],
        wanted.get("created_at_from", "") <= fee["created_at"],
        fee["created_at"] <= wanted.get("created_at_to", "9999"),
    )
    return all(checks)


async def index(request: Request) -> Response:
    """GET /fees with FeesQuery's filters, oldest first (``created_at: :asc``)."""
    state = state_of(request)
    wanted = _wanted(request)
    return paginate(request, "fees", [f for f in all_fees(state) if _matches(f, wanted)])


async def show(request: Request) -> Response:
    """GET /fees/{lago_id}, or 404 ``fee_not_found``."""
    lago_id = request.path_params["lago_id"]
    for fee in all_fees(state_of(request)):
        if fee["lago_id"] == lago_id:
            return ok({"fee": fee})
    raise NotFound("fee")


def routes() -> list[BaseRoute]:
    """The fee reads, mounted under ``/api/v1``."""
    return [
        Route("/fees", index, methods=["GET"]),
        Route("/fees/{lago_id}", show, methods=["GET"]),
    ]
