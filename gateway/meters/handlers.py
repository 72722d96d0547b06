"""What the meters do with Lago's webhooks (listed in ``gateway.worker.WEBHOOK_HANDLERS``).

``subscription.*``: Lago's subscription object (with its customer and plan) carries the
billing terms; they are stored as the meters' copy (``meter_subscriptions``). Processes
reading them through their cache see the change within ``service.TERMS_TTL``.
"""

from __future__ import annotations

from typing import Any

from gateway.meters.service import Meters
from gateway.runtime import Runtime
from gateway.webhooks.models import InboundWebhook


async def on_subscription(runtime: Runtime, inbound: InboundWebhook, payload: Any) -> None:
    """A subscription started, changed or ended in Lago: store its terms."""
    subscription = payload.get("subscription") if isinstance(payload, dict) else None
    if not isinstance(subscription, dict):
        return
    if not subscription.get("external_id") or not subscription.get("plan_code"):
        return
    await Meters(runtime.database, runtime.lago, {}).adopt(subscription)
