"""The embedded default's whole flow: usage becomes an invoice at the period's close, its
webhook reaches the gateway (verified as Lago's), is relayed to a subscriber, its PDF
downloads; ``/docs`` needs no internet; ``catalog apply`` and ``lago close-period`` reach the
running gateway's emulator."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from click.testing import CliRunner

from gateway import emulator_cli
from gateway.app import create_app
from gateway.auth.service import create_key
from gateway.catalog import cli as catalog_cli
from gateway.cli import main
from gateway.config import EMBEDDED_GATEWAY_URL, Settings
from gateway.integrations.lago.client import LagoClient
from gateway.migrations.runner import upgrade
from lago.emulator import EmulatorState
from tests.conftest import make_settings
from tests.relay.conftest import eventually
from tests.relay.receiver import Receiver
from tests.relay.test_real_server import serving

pytestmark = pytest.mark.asyncio


@dataclass
class Embedded:
    app: Any
    client: httpx.AsyncClient
    admin: dict[str, str]

    @property
    def lago(self) -> EmulatorState:
        state: EmulatorState = self.app.state.emulator.state.lago
        return state


@pytest_asyncio.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Embedded]:
    """``gateway serve`` on the embedded default, workers on, in process."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    settings = make_settings(url, lago_api_url="", lago_api_key="", relay_allow_private=True)
    app = create_app(settings, run_workers=True)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        async with app.state.parts.runtime.database.session() as session:
            key = await create_key(session, "dev", ["admin"])
            await session.commit()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url=EMBEDDED_GATEWAY_URL
        )
        yield Embedded(app, client, {"Authorization": f"Bearer {key}"})
        await client.aclose()


async def _usage(gw: Embedded) -> None:
    """The README's quickstart: a customer, a subscription, two generations."""
    customer = {"external_id": "acme", "name": "Acme", "currency": "USD"}
    subscription = {"external_customer_id": "acme", "plan_code": "basic_monthly",
                    "external_id": "sub_acme"}  # fmt: skip
    events = [{"transaction_id": "gen_1", "external_subscription_id": "sub_acme",
               "code": "video_generation", "properties": {"seconds": 10}}]  # fmt: skip
    for path, body in (
        ("/api/v1/customers", {"customer": customer}),
        ("/api/v1/subscriptions", {"subscription": subscription}),
        ("/api/v1/events/batch", {"events": events}),
    ):
        answer = await gw.client.post(path, json=body, headers=gw.admin)
        assert answer.status_code == 200, answer.text
    await eventually(lambda: ("sub_acme", "gen_1") in gw.lago.events)


async def test_a_closed_period_is_invoiced_verified_relayed_and_its_pdf_served(
    embedded: Embedded,
) -> None:
    receiver = Receiver()
    async with serving(receiver) as base:
        body = {"url": f"{base}/hook", "filter_types": ["invoice.*"]}
        created = await embedded.client.post(
            "/gateway/endpoints", json=body, headers=embedded.admin
        )
        receiver.secrets.append(created.json()["secret"])
        await _usage(embedded)

        closed = await embedded.client.post("/lago/_emulator/close_period", json={})
        [invoice] = closed.json()["invoices"]
        await eventually(lambda: any(r.envelope.get("type") == "invoice.created"
                                     for r in receiver.received))  # fmt: skip

    fees = {fee["item"]["code"]: fee["amount_cents"] for fee in invoice["fees"]}
    assert fees == {"basic_monthly": 999, "photo_generation": 0, "video_generation": 150}
    [sent] = [w for w in embedded.lago.webhooks_sent if w.webhook_type == "invoice.created"]
    assert sent.attempts == [200]  # the gateway verified its JWT signature
    relayed = [r.envelope for r in receiver.received if r.envelope["type"] == "invoice.created"]
    assert relayed[0]["data"]["invoice"]["lago_id"] == invoice["lago_id"]
    usage = await embedded.client.get(
        "/api/v1/customers/acme/current_usage",
        params={"external_subscription_id": "sub_acme"},
        headers=embedded.admin,
    )
    assert usage.json()["customer_usage"]["amount_cents"] == 0  # the next period has begun

    pdf = await embedded.client.get(
        f"/gateway/invoices/{invoice['lago_id']}/pdf", headers=embedded.admin
    )
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")
    assert invoice["number"].encode() in pdf.content


async def test_docs_reference_only_the_gateways_own_assets(embedded: Embedded) -> None:
    page = await embedded.client.get("/docs")
    assets = sorted(re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text))
    answers = [await embedded.client.get(asset) for asset in assets]
    redoc = await embedded.client.get("/redoc")

    assert page.status_code == 200
    assert assets == [
        "/docs/assets/favicon.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert "//" not in page.text.split("<body>")[0]  # no other host
    assert redoc.status_code == 404  # ReDoc's bundle would fetch a logo from its CDN


def _through(gw: Embedded, seen: list[str]) -> Any:
    """The CLI's clients, sent to the in-process gateway (the URL the CLI chose is kept)."""

    def lago_client(settings: Settings, gateway_url: str = EMBEDDED_GATEWAY_URL) -> LagoClient:
        seen.append(catalog_cli.lago_url(settings, gateway_url))
        transport = httpx.ASGITransport(app=gw.app)
        return LagoClient(seen[-1], settings.lago_key, transport=transport)

    def emulator_client(gateway_url: str) -> httpx.AsyncClient:
        seen.append(f"{gateway_url}/lago")
        transport = httpx.ASGITransport(app=gw.app)
        return httpx.AsyncClient(transport=transport, base_url=seen[-1])

    return lago_client, emulator_client


async def test_catalog_apply_and_close_period_reach_the_running_gateways_emulator(
    embedded: Embedded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[str] = []
    lago_client, emulator_client = _through(embedded, seen)
    monkeypatch.setattr(catalog_cli, "lago_client", lago_client)
    monkeypatch.setattr(emulator_cli, "emulator_client", emulator_client)
    monkeypatch.delenv("GATEWAY_LAGO_API_URL", raising=False)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'gateway.db'}")
    del embedded.lago.coupons["WELCOME20"]  # something for apply to do
    await _usage(embedded)
    runner = CliRunner()

    applied = await asyncio.to_thread(runner.invoke, main, ["catalog", "apply"])
    closed = await asyncio.to_thread(runner.invoke, main, ["lago", "close-period"])

    assert applied.exit_code == 0, applied.output
    assert "create coupon WELCOME20" in applied.output
    assert "WELCOME20" in embedded.lago.coupons
    assert closed.exit_code == 0, closed.output
    assert "1 invoice(s) issued" in closed.output and "acme" in closed.output
    assert seen == [f"{EMBEDDED_GATEWAY_URL}/lago"] * 2
