"""HTTP endpoints for wallets and wallet transactions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .clock import iso
from .customers import get_customer
from .errors import ValidationFailed
from .http import ok, paginate, read_root, state_of
from .outbox import emit
from .recurring_rules import rules_error, update_rules, valid_expiration_at
from .state import EmulatorState, Record
from .wallets import (
    SETTABLE,
    check_transaction,
    create_wallet,
    get_wallet,
    serialize,
    top_up,
    transaction_fields,
)

_FILTERS = {
    "status": ("pending", "settled", "failed"),
    "transaction_status": ("purchased", "granted", "voided", "invoiced"),
    "transaction_type": ("inbound", "outbound"),
}


def _customer_wallets(state: EmulatorState, external_customer_id: str) -> list[Record]:
    get_customer(state, external_customer_id)
    found = [w for w in state.wallets.values() if w["external_customer_id"] == external_customer_id]
    return [serialize(state, w) for w in found]


async def create(request: Request) -> Response:
    """POST /wallets."""
    state = state_of(request)
    wallet = create_wallet(state, await read_root(request, "wallet"))
    return ok({"wallet": serialize(state, wallet)})


async def index(request: Request) -> Response:
    """GET /wallets?external_customer_id=."""
    customer_id = request.query_params.get("external_customer_id", "")
    return paginate(request, "wallets", _customer_wallets(state_of(request), customer_id))


async def customer_index(request: Request) -> Response:
    """GET /customers/{external_customer_id}/wallets."""
    customer_id = request.path_params["external_customer_id"]
    return paginate(request, "wallets", _customer_wallets(state_of(request), customer_id))


async def show(request: Request) -> Response:
    """GET /wallets/{lago_id}."""
    state = state_of(request)
    return ok({"wallet": serialize(state, get_wallet(state, request.path_params["lago_id"]))})


async def update(request: Request) -> Response:
    """PUT /wallets/{lago_id} (``Wallets::UpdateService``: a terminated wallet is 422
    ``wallet_is_terminated``, then ``expiration_at``, then the recurring rules are checked;
    ``recurring_transaction_rules`` given, even ``[]``, replace the wallet's rules)."""
    state = state_of(request)
    wallet = get_wallet(state, request.path_params["lago_id"])
    params = await read_root(request, "wallet")
    if wallet["status"] == "terminated":
        raise ValidationFailed({"wallet_id": ["wallet_is_terminated"]})
    if not valid_expiration_at(state, params.get("expiration_at")):
        raise ValidationFailed({"expiration_at": ["invalid_date"]})
    rules = params.get("recurring_transaction_rules")
    if rules is not None and (error := rules_error(state, rules)):
        raise ValidationFailed({"recurring_transaction_rules": [error]})
    wallet.update({key: params[key] for key in SETTABLE if key in params})
    if isinstance(rules, list):
        update_rules(state, wallet, rules)
    emit(state, "wallet.updated", "wallet", serialize(state, wallet))
    return ok({"wallet": serialize(state, wallet)})


async def destroy(request: Request) -> Response:
    """DELETE /wallets/{lago_id}: terminate."""
    state = state_of(request)
    wallet = get_wallet(state, request.path_params["lago_id"])
    if wallet["status"] == "active":
        wallet.update(status="terminated", terminated_at=iso(state.now()))
        emit(state, "wallet.terminated", "wallet", serialize(state, wallet))
    return ok({"wallet": serialize(state, wallet)})


async def create_transactions(request: Request) -> Response:
    """POST /wallet_transactions: paid, granted and voided credits
    (lago-api ``WalletTransactions::CreateFromParamsService``)."""
    state = state_of(request)
    params = await read_root(request, "wallet_transaction")
    wallet = check_transaction(state, params)
    return ok({"wallet_transactions": top_up(state, wallet, params, transaction_fields(params))})


async def transactions(request: Request) -> Response:
    """GET /wallets/{lago_id}/wallet_transactions?status=&transaction_status=&transaction_type=
    (lago-api ``app/queries/wallet_transactions_query.rb``: newest first; a filter
    value that is not one of the enum's is ignored)."""
    state = state_of(request)
    wallet = get_wallet(state, request.path_params["lago_id"])
    filters = {
        key: request.query_params[key]
        for key, allowed in _FILTERS.items()
        if request.query_params.get(key) in allowed
    }
    found = [
        t
        for t in state.wallet_transactions.values()
        if t["lago_wallet_id"] == wallet["lago_id"] and all(t[k] == v for k, v in filters.items())
    ]
    # Stored in creation order; Lago's created_at has microseconds, so newest first is this
    # order reversed.
    return paginate(request, "wallet_transactions", found[::-1])
