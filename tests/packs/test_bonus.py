"""A pack's bonus is owed until its paid credits settle, then granted exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import httpx
import orjson
import pytest

from gateway.integrations.lago.client import LagoClient
from gateway.packs import handlers, reconciler, settlement
from gateway.packs.account import refresh_account
from gateway.runtime import Runtime
from gateway.webhooks.processor import Processor
from gateway.worker import WEBHOOK_HANDLERS
from lago.emulator import EmulatorState
from tests.conftest import LAGO_KEY, LAGO_URL, Gateway
from tests.packs.conftest import bonuses, buy, pay, purchase_row, reconcile, rows


async def _balance(gw: Gateway, customer: str) -> dict[str, Any]:
    response = await gw.client.get(
        f"/gateway/customers/{customer}/balance", headers=await gw.headers("billing:read")
    )
    assert response.status_code == 200, response.text
    wallet: dict[str, Any] = response.json()["balance"]["wallet"]
    return wallet


async def test_buying_tops_up_only_the_paid_credits_and_owes_the_bonus(shop: Gateway) -> None:
    bought = await buy(shop, "alice", "mega")

    [wallet] = shop.emulator.wallets.values()
    [paid] = shop.emulator.wallet_transactions.values()
    assert (paid["transaction_status"], paid["status"]) == ("purchased", "pending")
    assert paid["credit_amount"] == "799.8"
    assert wallet["credits_balance"] == "0.0", "nothing is spendable before payment"
    assert (bought["granted_credits"], bought["bonus_status"]) == ("1000.2", "awaiting_payment")
    row = await purchase_row(shop, bought["purchase_id"])
    assert (row.bonus_status, row.bonus_credits) == ("awaiting_payment", "1000.2")
    assert (row.lago_transaction_id, row.lago_invoice_id) == (
        paid["lago_id"],
        bought["lago_invoice_id"],
    )
    balance = await _balance(shop, "alice")
    assert (balance["settled_credits"], balance["ongoing_credits"]) == ("0.0", "0.0")
    assert (balance["pending_credits"], balance["pending_bonus_credits"]) == ("799.8", "1000.2")


async def test_the_reconciler_grants_the_bonus_once_after_the_invoice_is_paid(
    shop: Gateway,
) -> None:
    bought = await buy(shop, "bob", "mega")
    unpaid = await reconcile(shop)
    waiting = await purchase_row(shop, bought["purchase_id"])

    await pay(shop, bought["lago_invoice_id"])
    first = await reconcile(shop, after=3600)
    second = await reconcile(shop, after=7200)

    assert unpaid == {"pending": 1}
    assert (waiting.bonus_lease_until, waiting.bonus_checks) == (None, 1)
    assert (first, second) == ({"granted": 1}, {})
    [bonus] = bonuses(shop, bought["purchase_id"])
    assert (bonus["credit_amount"], bonus["status"]) == ("1000.2", "settled")
    [wallet] = shop.emulator.wallets.values()
    assert wallet["credits_balance"] == "1800.0"
    row = await purchase_row(shop, bought["purchase_id"])
    assert (row.bonus_status, row.bonus_transaction_id) == ("bonus_granted", bonus["lago_id"])
    audit = await rows(
        shop,
        "SELECT actor, outcome, target FROM audit_entries WHERE action = 'packs.bonus.granted'",
    )
    assert [tuple(a) for a in audit] == [("reconciler", "success", "bob")]
    [message] = await rows(
        shop, "SELECT body FROM relay_messages WHERE type = 'packs.bonus.granted'"
    )
    data = orjson.loads(message.body)["data"]
    assert (data["purchase_id"], data["bonus_credits"]) == (bought["purchase_id"], "1000.2")
    # Lago's wallet_transaction webhooks make the account read the wallet again.
    await refresh_account(shop.runtime.database, shop.runtime.lago, shop.parts.catalog, "bob")
    balance = await _balance(shop, "bob")
    assert (balance["settled_credits"], balance["pending_bonus_credits"]) == ("1800.0", "0")


async def test_concurrent_reconcilers_grant_the_bonus_once(shop: Gateway) -> None:
    bought = [await buy(shop, f"carol{i}", "large") for i in range(3)]
    for purchase in bought:
        await pay(shop, purchase["lago_invoice_id"])

    passes = await asyncio.gather(*(reconcile(shop) for _ in range(4)))

    assert sum(p.get("granted", 0) for p in passes) == 3
    for purchase in bought:
        assert len(bonuses(shop, purchase["purchase_id"])) == 1
    audit = await rows(shop, "SELECT id FROM audit_entries WHERE action = 'packs.bonus.granted'")
    assert len(audit) == 3


async def test_signed_lago_webhooks_grant_the_bonus_once(hooked_shop: Gateway) -> None:
    shop = hooked_shop
    bought = await buy(shop, "dan", "medium")
    await pay(shop, bought["lago_invoice_id"])
    sent = await shop.emulator.deliver_webhooks(shop.client)
    [settled] = [w for w in sent if w.webhook_type == "wallet_transaction.updated"]
    processor = Processor(shop.runtime, WEBHOOK_HANDLERS)

    await processor.process_due()
    # The same news again under a new unique key (a manual resend), and any busy retries.
    replay = {**settled.headers, "X-Lago-Unique-Key": "resent-1"}
    resent = await shop.client.post(settled.url, content=settled.body, headers=replay)
    await processor.process_due(now=time.time() + 600)

    assert {w.status for w in sent} == {"succeeded"}
    assert resent.status_code == 200, resent.text
    assert len(bonuses(shop, bought["purchase_id"])) == 1
    row = await purchase_row(shop, bought["purchase_id"])
    assert row.bonus_status == "bonus_granted"
    audit = await rows(shop, "SELECT actor FROM audit_entries WHERE action = 'packs.bonus.granted'")
    assert [a.actor for a in audit] == ["webhook:lago"]
    assert await reconcile(shop, after=3600) == {}


async def test_a_failed_payment_never_grants_the_bonus(shop: Gateway) -> None:
    bought = await buy(shop, "erin", "mega")
    await pay(shop, bought["lago_invoice_id"], "failed")

    first = await reconcile(shop)
    later = await reconcile(shop, after=7 * 86400)
    row = await purchase_row(shop, bought["purchase_id"])
    news = {"wallet_transaction": shop.emulator.wallet_transactions[row.lago_transaction_id]}
    await handlers.on_wallet_transaction(shop.runtime, None, news)  # type: ignore[arg-type]

    assert first == {"failed": 1}
    assert later == {"failed": 1}
    assert bonuses(shop, bought["purchase_id"]) == []
    [wallet] = shop.emulator.wallets.values()
    assert wallet["credits_balance"] == "0.0"
    row = await purchase_row(shop, bought["purchase_id"])
    assert row.bonus_status == "payment_failed"
    withheld = await rows(
        shop, "SELECT outcome FROM audit_entries WHERE action = 'packs.bonus.withheld'"
    )
    assert [w.outcome for w in withheld] == ["payment_failed"]
    assert (await _balance(shop, "erin"))["pending_bonus_credits"] == "0"


class CommitThenFail(httpx.AsyncBaseTransport):
    """Lago grants the bonus, then the connection drops (the emulator's fail-after-commit fault)."""

    def __init__(self, app: Any, state: EmulatorState) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.state = state

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        grant = request.method == "POST" and b"granted_credits" in request.content
        self.state.faults.fail_after_commit_rate = 1.0 if grant else 0.0
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.state.faults.fail_after_commit_rate = 0.0


async def test_a_lost_answer_during_the_grant_is_found_instead_of_granting_twice(
    shop: Gateway,
) -> None:
    bought = await buy(shop, "fay", "large")
    await pay(shop, bought["lago_invoice_id"])
    flaky = LagoClient(LAGO_URL, LAGO_KEY, transport=CommitThenFail(shop.lago_app, shop.emulator))
    lossy: Runtime = dataclasses.replace(shop.runtime, lago=flaky)

    lost = await reconciler.run_once(lossy)
    await flaky.aclose()
    leased = await reconcile(shop, after=5)
    lease = settlement.lease_seconds(shop.runtime.settings)
    retried = await reconcile(shop, after=lease + 1)

    assert (lost, leased, retried) == ({"error": 1}, {}, {"granted": 1})
    assert shop.emulator.faults_injected["fail_after_commit"] == 1
    [bonus] = bonuses(shop, bought["purchase_id"])
    row = await purchase_row(shop, bought["purchase_id"])
    assert (row.bonus_status, row.bonus_transaction_id) == ("bonus_granted", bonus["lago_id"])
    [audit] = await rows(
        shop, "SELECT detail FROM audit_entries WHERE action = 'packs.bonus.granted'"
    )
    detail = audit.detail if isinstance(audit.detail, dict) else orjson.loads(audit.detail)
    assert detail["adopted"] is True


async def test_a_webhook_for_a_purchase_another_process_holds_is_retried(shop: Gateway) -> None:
    bought = await buy(shop, "gus", "medium")
    await pay(shop, bought["lago_invoice_id"])
    row = await purchase_row(shop, bought["purchase_id"])
    held = await settlement.claim(
        shop.runtime.database,
        lease=settlement.lease_seconds(shop.runtime.settings),
        transaction_id=row.lago_transaction_id,
    )
    payload = {"wallet_transaction": shop.emulator.wallet_transactions[row.lago_transaction_id]}

    with pytest.raises(settlement.BonusBusy):
        await handlers.on_wallet_transaction(shop.runtime, None, payload)  # type: ignore[arg-type]

    assert held is not None
    assert bonuses(shop, bought["purchase_id"]) == []
