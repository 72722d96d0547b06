"""Invoices as Lago holds them: listed, fetched and acted on, every action audited.

Lago is called first and the audit line committed after, so no vendor call runs while
the gateway holds uncommitted writes. A refused or failed action is audited too.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.audit.service import record
from gateway.db import Database
from gateway.errors import NotFound, from_lago
from gateway.integrations.lago.client import LagoApiError, LagoClient, LagoError
from gateway.invoices.schemas import LAGO_ID, MAX_PER_PAGE, InvoiceFilters

# action name → (method, path suffix); every one of them is audited as ``invoices.<name>``.
ACTIONS: dict[str, tuple[str, str]] = {
    "update": ("PUT", ""),
    "download": ("POST", "/download"),
    "refresh": ("PUT", "/refresh"),
    "finalize": ("PUT", "/finalize"),
    "void": ("POST", "/void"),
    "retry_payment": ("POST", "/retry_payment"),
    "payment_url": ("POST", "/payment_url"),
}


def check_id(lago_id: str) -> str:
    """A Lago id (a UUID) as a path segment, or 404: nothing else reaches Lago's URL."""
    if not LAGO_ID.fullmatch(lago_id):
        raise NotFound(code="invoice_not_found")
    return lago_id


async def list_page(
    lago: LagoClient, filters: InvoiceFilters, page: int, per_page: int
) -> dict[str, Any]:
    """One page of Lago's ``GET /invoices`` (``{"invoices": [...], "meta": {...}}``)."""
    params = [*filters.to_params(), ("page", str(page)), ("per_page", str(per_page))]
    try:
        return await lago.call("GET", "/invoices", params=params)
    except LagoError as exc:
        raise from_lago(exc) from exc


async def iterate(
    lago: LagoClient,
    filters: InvoiceFilters,
    *,
    first: dict[str, Any] | None = None,
    max_pages: int | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every invoice matching ``filters``, page after page, each once.

    Lago lists newest first, so an invoice issued while paging shifts the pages by one:
    ids already yielded are skipped instead of appearing twice.
    """
    seen: set[str] = set()
    page, body = 1, first
    while max_pages is None or page <= max_pages:
        if body is None:
            body = await list_page(lago, filters, page, MAX_PER_PAGE)
        for invoice in body.get("invoices") or []:
            if invoice["lago_id"] not in seen:
                seen.add(invoice["lago_id"])
                yield invoice
        if not (body.get("meta") or {}).get("next_page"):
            return
        page, body = page + 1, None


async def fetch(lago: LagoClient, lago_id: str) -> dict[str, Any]:
    """One invoice with its fees, credits and customer, as Lago computed them."""
    try:
        body = await lago.call("GET", f"/invoices/{check_id(lago_id)}")
    except LagoError as exc:
        raise from_lago(exc) from exc
    invoice: dict[str, Any] = body["invoice"]
    return invoice


async def fees(lago: LagoClient, query: list[tuple[str, str]]) -> dict[str, Any]:
    """Lago's ``GET /fees`` with its filters (``external_customer_id``, ``fee_type``...)."""
    try:
        return await lago.call("GET", "/fees", params=query or None)
    except LagoError as exc:
        raise from_lago(exc) from exc


async def fee(lago: LagoClient, lago_id: str) -> dict[str, Any]:
    """One fee (``{"fee": {...}}``); an id that is no UUID is 404 ``fee_not_found``."""
    if not LAGO_ID.fullmatch(lago_id):
        raise NotFound(code="fee_not_found")
    try:
        return await lago.call("GET", f"/fees/{lago_id}")
    except LagoError as exc:
        raise from_lago(exc) from exc


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


async def act(
    database: Database,
    lago: LagoClient,
    lago_id: str,
    action: str,
    *,
    actor: str,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one invoice action in Lago and audit it (``invoices.<action>``), success or not."""
    method, suffix = ACTIONS[action]
    path = f"/invoices/{check_id(lago_id)}{suffix}"
    started = time.perf_counter()
    try:
        answer = await lago.call(method, path, json=_strip_nulls(body) if body else None)
    except LagoError as exc:
        status = exc.status if isinstance(exc, LagoApiError) else 503
        outcome = "rejected" if status < 500 else "failed"
        await _audit(database, actor, action, lago_id, outcome, status, started, changes(body))
        raise from_lago(exc) from exc
    await _audit(database, actor, action, lago_id, "success", 200, started, changes(body))
    return answer


def changes(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """What an update asked to change, for its audit row: ``payment_status`` as sent, the
    metadata keys (their values may be anything a caller stores, so they stay out)."""
    fields = (body or {}).get("invoice")
    if not isinstance(fields, dict):
        return None
    found: dict[str, Any] = {}
    if "payment_status" in fields:
        found["payment_status"] = fields["payment_status"]
    if isinstance(fields.get("metadata"), list):
        keys = [m.get("key") for m in fields["metadata"] if isinstance(m, dict)]
        found["metadata_keys"] = [k for k in keys if isinstance(k, str)]
    return found or None


async def _audit(
    database: Database,
    actor: str,
    action: str,
    lago_id: str,
    outcome: str,
    status: int,
    started: float,
    detail: dict[str, Any] | None = None,
) -> None:
    async with database.session() as session:
        record(
            session,
            actor=actor,
            action=f"invoices.{action}",
            outcome=outcome,
            target=lago_id,
            upstream="lago",
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=detail,
        )
        await session.commit()


async def locate_pdf(
    database: Database, lago: LagoClient, lago_id: str, *, actor: str
) -> tuple[dict[str, Any], str | None]:
    """The invoice and where its PDF is; no URL while Lago generates it (generation is
    triggered, and audited, by the first ask)."""
    invoice = await fetch(lago, lago_id)
    if invoice.get("file_url"):
        return invoice, str(invoice["file_url"])
    answer = await act(database, lago, lago_id, "download", actor=actor)
    url = (answer.get("invoice") or {}).get("file_url")
    return invoice, str(url) if url else None


def pdf_filename(invoice_number: str | None, lago_id: str) -> str:
    """``EMU-000001.pdf``: the invoice number, reduced to filename-safe characters."""
    stem = "".join(c for c in (invoice_number or lago_id) if c.isalnum() or c in "-_.")
    return f"{stem or lago_id}.pdf"
