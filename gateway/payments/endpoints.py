"""Lago's payment routes (``/api/v1/payments``), and Lago's webhook key, which is not served.

Lago's payments list holds what Lago recorded: manual payments, and the payments of Lago's
own provider integration (collection ``lago``). When the gateway collects through Stripe it
tells Lago an invoice's payment status only (``gateway/collection/lago_sync.py``), which
creates no payment in Lago.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from gateway.billing.passthrough import read
from gateway.billing.payloads import lago_uuid
from gateway.http.auth import BillingReader
from gateway.http.dependencies import RuntimeDep
from gateway.http.pagination import LagoPage, query_pairs
from gateway.http.responses import OrjsonResponse
from gateway.payments import unserved

router = APIRouter(prefix="/api/v1", tags=["payments"])


@router.get("/payments")
async def list_payments(
    request: Request,
    runtime: RuntimeDep,
    _: BillingReader,
    external_customer_id: str | None = None,
    invoice_id: str | None = None,
    page: LagoPage = None,
    per_page: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Response:
    """Lago's payments, newest first, by customer or invoice, with ``meta`` pagination."""
    query = query_pairs(request)
    return OrjsonResponse(await read(runtime.lago, "/payments", query))


@router.get("/payments/{lago_id}")
async def get_payment(lago_id: str, runtime: RuntimeDep, _: BillingReader) -> Response:
    """One payment (an id that is not a UUID is Lago's ``payment_not_found``)."""
    path = f"/payments/{lago_uuid(lago_id, 'payment')}"
    return OrjsonResponse(await read(runtime.lago, path))


@router.get("/webhooks/public_key", responses={405: {"description": "Not served"}})
async def webhook_public_key(_: BillingReader) -> Response:
    """Not served: subscribers verify the gateway's relay signatures, not Lago's key."""
    raise unserved.webhook_public_key()


@router.get("/webhooks/json_public_key", responses={405: {"description": "Not served"}})
async def webhook_json_public_key(_: BillingReader) -> Response:
    """Not served: subscribers verify the gateway's relay signatures, not Lago's key."""
    raise unserved.webhook_public_key()
