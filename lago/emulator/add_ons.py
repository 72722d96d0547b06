"""Lago's add-ons, keyed by code (``app/controllers/api/v1/add_ons_controller.rb``,
``app/services/add_ons/create_service.rb``, ``update_service.rb``, ``destroy_service.rb``,
``app/models/add_on.rb``, ``app/serializers/v1/add_on_serializer.rb``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .clock import iso, new_id
from .currencies import ACCEPTED_CURRENCIES
from .errors import NotFound, ValidationFailed
from .http import ok, paginate, read_root, state_of
from .state import EmulatorState, Record

# AddOnsController#input_params; ``tax_codes`` is permitted but the emulator has no taxes.
_FIELDS = ("name", "invoice_display_name", "code", "amount_cents", "amount_currency", "description")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _amount_error(value: Any) -> str | None:
    """``validates :amount_cents, numericality: {greater_than: 0}`` (en.yml: ``greater_than``
    is ``value_is_out_of_range``; a value that is not a number is ``value_is_invalid``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "value_is_invalid"
    return None if value > 0 else "value_is_out_of_range"


def _validate(state: EmulatorState, add_on: Record) -> None:
    """AddOn's validations in the model's order, every failing one reported."""
    errors: dict[str, list[str]] = {}
    if _blank(add_on.get("name")):
        errors["name"] = ["value_is_mandatory"]
    taken = state.add_ons.get(str(add_on.get("code")))
    if _blank(add_on.get("code")):
        errors["code"] = ["value_is_mandatory"]
    elif taken is not None and taken["lago_id"] != add_on["lago_id"]:
        errors["code"] = ["value_already_exist"]
    amount = _amount_error(add_on.get("amount_cents"))
    if amount is not None:
        errors["amount_cents"] = [amount]
    if add_on.get("amount_currency") not in ACCEPTED_CURRENCIES:
        errors["amount_currency"] = ["value_is_invalid"]
    if errors:
        raise ValidationFailed(errors)


def get_add_on(state: EmulatorState, code: str) -> Record:
    """The add-on (discarded ones are gone: ``default_scope -> { kept }``), or 404
    ``add_on_not_found``."""
    add_on = state.add_ons.get(code)
    if add_on is None:
        raise NotFound("add_on")
    return add_on


def create_add_on(state: EmulatorState, params: dict[str, Any]) -> Record:
    """AddOns::CreateService: store the add-on, or 422 with every failed validation."""
    add_on: Record = {
        "lago_id": new_id(),
        "name": None,
        "invoice_display_name": None,
        "code": None,
        "amount_cents": None,
        "amount_currency": None,
        "created_at": iso(state.now()),
        "description": None,
        "taxes": [],
    }
    add_on.update({k: params[k] for k in _FIELDS if k in params})
    _validate(state, add_on)
    state.add_ons[add_on["code"]] = add_on
    return add_on


def _rekey(state: EmulatorState, old: str, add_on: Record) -> None:
    """Store ``add_on`` under its (maybe new) code, keeping its place in the list."""
    state.add_ons = {
        (add_on["code"] if code == old else code): (add_on if code == old else record)
        for code, record in state.add_ons.items()
    }


async def create(request: Request) -> Response:
    """POST /add_ons."""
    params = await read_root(request, "add_on")
    return ok({"add_on": create_add_on(state_of(request), params)})


async def index(request: Request) -> Response:
    """GET /add_ons, newest first (``BaseQuery::DEFAULT_ORDER``)."""
    records = list(reversed(state_of(request).add_ons.values()))
    return paginate(request, "add_ons", records)


async def show(request: Request) -> Response:
    """GET /add_ons/{code}."""
    return ok({"add_on": get_add_on(state_of(request), request.path_params["code"])})


async def update(request: Request) -> Response:
    """PUT /add_ons/{code}: AddOns::UpdateService sets each field given (``key?``)."""
    state = state_of(request)
    add_on = get_add_on(state, request.path_params["code"])
    params = await read_root(request, "add_on")
    changed = {**add_on, **{k: params[k] for k in _FIELDS if k in params}}
    _validate(state, changed)
    old = add_on["code"]
    add_on.update(changed)
    _rekey(state, old, add_on)
    return ok({"add_on": add_on})


async def destroy(request: Request) -> Response:
    """DELETE /add_ons/{code}: AddOns::DestroyService discards it; the answer is the add-on."""
    state = state_of(request)
    add_on = state.add_ons.pop(get_add_on(state, request.path_params["code"])["code"])
    return ok({"add_on": add_on})


def routes() -> list[BaseRoute]:
    """The add-on routes, mounted under ``/api/v1`` (``resources :add_ons, param: :code``)."""
    return [
        Route("/add_ons", create, methods=["POST"]),
        Route("/add_ons", index, methods=["GET"]),
        Route("/add_ons/{code:path}", show, methods=["GET"]),
        Route("/add_ons/{code:path}", update, methods=["PUT"]),
        Route("/add_ons/{code:path}", destroy, methods=["DELETE"]),
    ]
