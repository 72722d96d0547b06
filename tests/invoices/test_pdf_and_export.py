"""The invoice PDF streamed from Lago's file URL, and the CSV export for accounting."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import respx
from sqlmodel import select

from gateway.audit.models import AuditEntry
from lago.emulator import EmulatorState
from lago.emulator import create_app as create_emulator
from lago.emulator.customers import upsert_customer
from tests.conftest import LAGO_KEY, Gateway, make_settings, start_gateway

PDF = b"%PDF-1.7\n" + b"x" * 200_000 + b"\n%%EOF"


async def test_pdf_is_streamed_from_lagos_file_url(gateway: Gateway) -> None:
    upsert_customer(gateway.emulator, {"external_id": "acme", "currency": "USD"})
    issued = gateway.emulator.issue_invoice("acme", 1500)
    url = f"http://lago-emulator:3000/files/invoices/{issued['lago_id']}.pdf"
    headers = await gateway.headers("billing:read")

    with respx.mock(assert_all_called=True) as files:
        files.get(url).respond(200, content=PDF, headers={"content-type": "application/pdf"})
        answer = await gateway.client.get(
            f"/gateway/invoices/{issued['lago_id']}/pdf", headers=headers
        )

    assert answer.status_code == 200
    assert answer.content == PDF
    assert answer.headers["content-type"] == "application/pdf"
    number = gateway.emulator.invoices[issued["lago_id"]]["number"]
    assert answer.headers["content-disposition"] == f'attachment; filename="{number}.pdf"'
    async with gateway.runtime.database.session() as session:
        audited = (await session.exec(select(AuditEntry.action))).all()
    assert "invoices.download" in audited  # generation was triggered, by this key


async def test_unreachable_file_is_a_502_not_a_broken_download(gateway: Gateway) -> None:
    upsert_customer(gateway.emulator, {"external_id": "acme", "currency": "USD"})
    issued = gateway.emulator.issue_invoice("acme", 1500)
    headers = await gateway.headers("billing:read")

    with respx.mock() as files:
        files.get(url__regex=r"http://lago-emulator:3000/.*").respond(404)
        answer = await gateway.client.get(
            f"/gateway/invoices/{issued['lago_id']}/pdf", headers=headers
        )

    assert answer.status_code == 502
    assert answer.json()["code"] == "invoice_file_unavailable"


class _PdfNotReady(httpx.AsyncBaseTransport):
    """Lago as it answers while the PDF is generated: ``download`` is 200 with no body."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.downloads = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/download"):
            self.downloads += 1
            return httpx.Response(200)
        return await self.inner.handle_async_request(request)


async def test_pdf_being_generated_answers_202(database_url: str, emulator: EmulatorState) -> None:
    upsert_customer(emulator, {"external_id": "acme", "currency": "USD"})
    issued = emulator.issue_invoice("acme", 1500)
    transport = _PdfNotReady(create_emulator(emulator, api_key=LAGO_KEY))
    gw, manager = await start_gateway(
        make_settings(database_url), emulator, lago_transport=transport
    )
    try:
        headers = await gw.headers("billing:read")
        answer = await gw.client.get(f"/gateway/invoices/{issued['lago_id']}/pdf", headers=headers)
    finally:
        await gw.client.aclose()
        await manager.__aexit__(None, None, None)

    assert answer.status_code == 202
    assert answer.headers["retry-after"] == "5"
    assert answer.json() == {"status": "generating", "lago_id": issued["lago_id"]}
    assert transport.downloads == 1


async def test_csv_export_pages_through_lago_with_the_same_filters(gateway: Gateway) -> None:
    emulator = gateway.emulator
    upsert_customer(emulator, {"external_id": "acme", "name": "Acme Inc", "currency": "USD"})
    upsert_customer(emulator, {"external_id": "evil", "name": '=HYPERLINK("x")'})
    upsert_customer(emulator, {"external_id": "tokyo", "currency": "JPY"})
    for cents in range(1, 131):
        emulator.issue_invoice("acme", cents * 100)
    emulator.issue_invoice("evil", 999)
    emulator.issue_invoice("tokyo", 5000, currency="JPY")
    emulator.issue_invoice("acme", 100, status="draft")
    headers = await gateway.headers("billing:read")

    answer = await gateway.client.get(
        "/gateway/invoices/export.csv", params={"statuses[]": "finalized"}, headers=headers
    )

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"].startswith('attachment; filename="invoices-')
    table = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(table) == 132  # two Lago pages, the draft filtered out by Lago
    assert len({row["lago_id"] for row in table}) == 132
    by_customer = {row["customer_external_id"]: row for row in table}
    assert by_customer["tokyo"]["total_amount"] == "5000"
    assert by_customer["tokyo"]["currency"] == "JPY"
    assert by_customer["evil"]["customer_name"] == '\'=HYPERLINK("x")'
    assert by_customer["evil"]["total_due_amount"] == "9.99"
    totals = sorted(row["total_amount"] for row in table if row["customer_external_id"] == "acme")
    assert totals[:2] == ["1.00", "10.00"]


async def test_csv_export_refuses_bad_filters_before_streaming(gateway: Gateway) -> None:
    headers = await gateway.headers("billing:read")

    answer = await gateway.client.get(
        "/gateway/invoices/export.csv", params={"currency": "dollars"}, headers=headers
    )

    assert answer.status_code == 422
    assert answer.json()["error_details"] == {"currency": ["invalid_value"]}
