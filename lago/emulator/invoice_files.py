"""Invoice PDFs: a one-page PDF made in code, served where ``file_url`` points.

Lago renders its PDFs in a job and serves them from Active Storage
(``app/services/invoices/generate_pdf_service.rb``); the emulator writes a few lines of the
invoice (number, customer, dates, fees, total) into a minimal valid PDF on each request.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .errors import NotFound
from .http import state_of
from .state import EmulatorState, Record

FILES_PATH = "/files/invoices"


def file_url(state: EmulatorState, invoice: Record) -> str:
    """Where the invoice's PDF is served: under the emulator's ``api_url``."""
    return f"{state.api_url.rstrip('/')}{FILES_PATH}/{invoice['lago_id']}.pdf"


def _escape(text: str) -> str:
    latin = text.encode("latin-1", "replace").decode("latin-1")
    return latin.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _lines(invoice: Record) -> list[str]:
    money = invoice["currency"]
    lines = [
        f"Invoice {invoice['number']}",
        f"Customer: {invoice['customer'].get('name') or invoice['customer']['external_id']}",
        f"Issued {invoice['issuing_date']}, due {invoice['payment_due_date']}",
        "",
    ]
    for fee in invoice.get("fees", []):
        item = fee.get("item") or {}
        lines.append(
            f"{item.get('name', 'Fee')}: {fee['units']} = {fee['amount_cents']} {money} cents"
        )
    lines.append("")
    lines.append(f"Total: {invoice['total_amount_cents']} {money} cents")
    return lines


def render_pdf(lines: list[str]) -> bytes:
    """A one-page PDF (Helvetica, A4) showing ``lines``, with a correct cross-reference table."""
    text = "".join(f"({_escape(line)}) Tj T* " for line in lines)
    stream = f"BT /F1 11 Tf 14 TL 50 790 Td {text}ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


async def pdf(request: Request) -> Response:
    """GET /files/invoices/{lago_id}.pdf: the PDF of an invoice whose file exists (made by
    ``POST /api/v1/invoices/{lago_id}/download``); 404 otherwise. No API key, as Active
    Storage's links need none."""
    state = state_of(request)
    invoice = state.invoices.get(request.path_params["lago_id"])
    if invoice is None or not invoice.get("file_url"):
        raise NotFound("invoice")
    name = f"{invoice['number']}.pdf"
    return Response(
        render_pdf(_lines(invoice)),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )
