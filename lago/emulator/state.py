"""The emulator's state: plain dicts a test can read, plus counters and fault settings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import rsa

from .clock import new_id, utc_now
from .faults import Faults
from .outbox import Webhook

if TYPE_CHECKING:
    import httpx

Record = dict[str, Any]


@dataclass
class EmulatorState:
    """Everything one emulated Lago organization holds.

    Keys: ``events`` by ``(external_subscription_id, transaction_id)`` (``(None, lago_id)``
    for an event without a subscription, which never clashes), ``customers`` by
    external id, ``billable_metrics``/``plans``/``coupons``/``features`` by code, everything else
    (``subscriptions``, ``wallets``, ``invoices``...) by ``lago_id``.
    """

    api_url: str = "http://lago-emulator:3000"
    organization_id: str = field(default_factory=new_id)
    hmac_key: str = field(default_factory=new_id)
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], datetime] = utc_now
    events: dict[tuple[str | None, str], Record] = field(default_factory=dict)
    events_by_transaction: dict[str, Record] = field(default_factory=dict)
    customers: dict[str, Record] = field(default_factory=dict)
    subscriptions: dict[str, Record] = field(default_factory=dict)
    billable_metrics: dict[str, Record] = field(default_factory=dict)
    plans: dict[str, Record] = field(default_factory=dict)
    wallets: dict[str, Record] = field(default_factory=dict)
    wallet_transactions: dict[str, Record] = field(default_factory=dict)
    coupons: dict[str, Record] = field(default_factory=dict)
    applied_coupons: dict[str, Record] = field(default_factory=dict)
    invoices: dict[str, Record] = field(default_factory=dict)
    credit_notes: dict[str, Record] = field(default_factory=dict)
    add_ons: dict[str, Record] = field(default_factory=dict)
    payments: dict[str, Record] = field(default_factory=dict)
    webhook_endpoints: dict[str, Record] = field(default_factory=dict)
    features: dict[str, Record] = field(default_factory=dict)
    entitlements: dict[str, Record] = field(default_factory=dict)
    entitlement_removals: list[Record] = field(default_factory=list)
    # Lago's InvoiceSubscription: the boundaries each periodic invoice billed (period_close.py).
    invoice_subscriptions: dict[str, Record] = field(default_factory=dict)
    webhooks_pending: list[Webhook] = field(default_factory=list)
    webhooks_sent: list[Webhook] = field(default_factory=list)
    webhook_attempts: int = 3
    webhook_retry_delays: tuple[float, ...] = (0.0, 0.0)
    event_requests: int = 0
    duplicate_rejections: int = 0
    requests_by_status: Counter[int] = field(default_factory=Counter)
    faults_injected: Counter[str] = field(default_factory=Counter)
    sequences: Counter[str] = field(default_factory=Counter)
    contract_violations: list[str] = field(default_factory=list)

    def reset(self) -> None:
        """Forget all data, counters and faults; keys and identity stay."""
        fresh = EmulatorState(
            api_url=self.api_url, organization_id=self.organization_id, hmac_key=self.hmac_key
        )
        fresh.clock = self.clock
        for name, value in vars(fresh).items():
            if name not in (
                "rsa_private_key",
                "faults",
                "webhook_attempts",
                "webhook_retry_delays",
            ):
                setattr(self, name, value)
        self.faults.clear()

    def now(self) -> datetime:
        """The emulator's current time (``clock`` is replaceable in tests)."""
        return self.clock()

    def next_sequence(self, name: str) -> int:
        """1, 2, 3... per ``name``: Lago's ``sequential_id`` and invoice numbers."""
        self.sequences[name] += 1
        return self.sequences[name]

    @cached_property
    def rsa_private_key(self) -> rsa.RSAPrivateKey:
        """The key webhooks are JWT-signed with; made on first use, kept across ``reset``."""
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def subscription(self, external_id: str, status: str = "active") -> Record | None:
        """The subscription with this external id and status (the newest if several)."""
        found = None
        for record in self.subscriptions.values():
            if record["external_id"] == external_id and record["status"] == status:
                found = record
        return found

    def issue_invoice(
        self,
        external_customer_id: str,
        amount_cents: int,
        currency: str = "USD",
        invoice_type: str = "subscription",
        status: str = "finalized",
        fees: list[dict[str, Any]] | None = None,
    ) -> Record:
        """Issue an invoice as Lago's billing run would (coupons and credits applied when
        finalized) and queue its webhook; returns the invoice's wire form."""
        # Imported here: billing needs this module's types, and this method is its entry.
        from .billing import issue_invoice

        return issue_invoice(
            self,
            external_customer_id,
            amount_cents,
            currency=currency,
            invoice_type=invoice_type,
            status=status,
            fees=fees,
        )

    async def deliver_webhooks(self, client: httpx.AsyncClient) -> list[Webhook]:
        """Post every queued webhook with ``client`` (``webhook_attempts`` tries each,
        ``webhook_retry_delays`` between them); they end up in ``webhooks_sent``."""
        from .delivery import deliver

        return await deliver(self, client, self.webhook_attempts, self.webhook_retry_delays)

    def stats(self) -> dict[str, Any]:
        """Counters for ``GET /_emulator/stats``."""
        return {
            "events_stored": len(self.events),
            "event_requests": self.event_requests,
            "duplicate_rejections": self.duplicate_rejections,
            "requests_by_status": {str(code): n for code, n in self.requests_by_status.items()},
            "faults_injected": dict(self.faults_injected),
            "webhooks_pending": len(self.webhooks_pending),
            "webhooks_sent": len(self.webhooks_sent),
        }
