"""What token packs do with Lago's webhooks (listed in ``gateway.worker.WEBHOOK_HANDLERS``).

Any wallet change (``wallet.*``, ``wallet_transaction.*``): the customer's token account
reads the wallet again (``account.refresh_wallet_account``).

A pack's paid top-up settled or failed (``wallet_transaction.updated``), or its credit
invoice's payment changed (``invoice.payment_status_updated``): grant or withhold the
pack's bonus. Both are idempotent: the purchase row's bonus state and the lookup of an
earlier grant in Lago decide, however often or concurrently a webhook is handled.
"""

from __future__ import annotations

from typing import Any

from gateway.packs import account, clawback, settlement
from gateway.runtime import Runtime
from gateway.webhooks.models import InboundWebhook

ACTOR = "webhook:lago"


async def on_wallet_transaction(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """A paid top-up of a pack settled (grant the bonus) or failed (withhold it)."""
    transaction = payload.get("wallet_transaction") or {}
    status, lago_id = transaction.get("status"), transaction.get("lago_id")
    if status not in (settlement.SETTLED, settlement.FAILED) or not lago_id:
        return
    # BonusBusy propagates: the webhook is retried after whoever holds the purchase is done.
    lease = settlement.lease_seconds(runtime.settings)
    owed = await settlement.claim(runtime.database, lease=lease, transaction_id=str(lago_id))
    if owed is not None:
        await settlement.settle(
            runtime.database,
            runtime.lago,
            owed,
            str(status),
            actor=ACTOR,
            via="webhook",
            reconcile_seconds=runtime.settings.packs_reconcile_seconds,
        )


async def on_wallet_change(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """A wallet or one of its transactions changed in Lago: the customer's token account
    (balance, holds) reads the wallet again."""
    wallet_id = (payload.get("wallet") or {}).get("lago_id") or (
        payload.get("wallet_transaction") or {}
    ).get("lago_wallet_id")
    if wallet_id:
        await account.refresh_wallet_account(runtime.database, runtime.lago, str(wallet_id))


async def on_credit_invoice(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """A pack's credit invoice was paid or failed: act on its top-up's status, read from Lago."""
    invoice = payload.get("invoice") or {}
    paid = invoice.get("payment_status")
    if invoice.get("invoice_type") != "credit" or paid not in ("succeeded", "failed"):
        return
    if not invoice.get("lago_id"):
        return
    lease = settlement.lease_seconds(runtime.settings)
    owed = await settlement.claim(runtime.database, lease=lease, invoice_id=str(invoice["lago_id"]))
    if owed is None:
        return
    statuses = await settlement.paid_statuses(runtime.lago, owed.wallet_id)
    # Lago settles the top-up in a job after the payment: if not yet, the reconciler looks soon.
    await settlement.settle(
        runtime.database,
        runtime.lago,
        owed,
        statuses.get(owed.transaction_id),
        actor=ACTOR,
        via="webhook",
        reconcile_seconds=runtime.settings.packs_reconcile_seconds,
        recheck_soon=True,
    )


async def on_credit_note(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """A credit note on a pack's credit invoice: take the pack's unspent tokens back.

    ``ClawbackBusy`` propagates: the webhook is retried once the bonus's lease is free."""
    note = payload.get("credit_note") or {}
    if note.get("lago_id"):
        lease = settlement.lease_seconds(runtime.settings)
        await clawback.claw_back(runtime.database, runtime.lago, note, actor=ACTOR, lease=lease)
