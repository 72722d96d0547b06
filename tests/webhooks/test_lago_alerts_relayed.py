"""Lago's own alerts reach subscribers: ``alert.triggered`` and
``subscription.usage_threshold_reached`` webhooks are relayed as Lago sent them, to the
endpoints subscribed to their type, though no gateway handler runs on them."""

from __future__ import annotations

import json

import orjson

from gateway.relay import subscribers
from gateway.webhooks.inbox import message_id
from tests.webhooks.conftest import LAGO_PATH, Hooks, lago_headers
from tests.webhooks.test_lago_inbound import _process

# As Lago serialises them (compact JSON): Webhooks::Alerts::TriggeredService's triggered
# alert, and Webhooks::Subscriptions::UsageThresholdsReachedService's subscription with the
# threshold reached.
ALERT_TRIGGERED = {
    "webhook_type": "alert.triggered",
    "object_type": "triggered_alert",
    "organization_id": "org_1",
    "triggered_alert": {
        "lago_id": "7d1f0c3e-0000-4000-8000-000000000001",
        "lago_organization_id": "org_1",
        "external_subscription_id": "sub_ada",
        "external_customer_id": "ada",
        "billable_metric_code": "photo_generation",
        "alert_name": "Photos",
        "alert_code": "photos_soft",
        "alert_type": "billable_metric_current_usage_units",
        "current_value": "8.0",
        "previous_value": "7.0",
        "crossed_thresholds": [{"code": "soft", "value": "8.0", "recurring": False}],
        "triggered_at": "2025-05-01T12:00:00Z",
    },
}
USAGE_THRESHOLD_REACHED = {
    "webhook_type": "subscription.usage_threshold_reached",
    "object_type": "subscription",
    "organization_id": "org_1",
    "subscription": {
        "lago_id": "7d1f0c3e-0000-4000-8000-000000000002",
        "external_id": "sub_ada",
        "external_customer_id": "ada",
        "plan_code": "basic_monthly",
        "status": "active",
        "usage_threshold": {
            "lago_id": "7d1f0c3e-0000-4000-8000-000000000003",
            "threshold_display_name": "Half the plan",
            "amount_cents": 500,
            "recurring": False,
            "created_at": "2025-04-01T00:00:00Z",
            "updated_at": "2025-04-01T00:00:00Z",
        },
    },
}


async def _subscribe(hooks: Hooks, pattern: str) -> str:
    async with hooks.gateway.runtime.database.session() as session:
        endpoint = await subscribers.create_endpoint(
            session,
            url="http://127.0.0.1:9/alerts",
            description="",
            filter_types=[pattern],
            enabled=True,
            allow_private=True,
        )
        await session.commit()
    return endpoint.id


async def test_lagos_alert_webhooks_are_relayed_as_lago_sent_them(hooks: Hooks) -> None:
    alerts = await _subscribe(hooks, "alert.*")
    thresholds = await _subscribe(hooks, "subscription.usage_threshold_reached")
    sent = {}
    for key, payload in (("uk_alert", ALERT_TRIGGERED), ("uk_usage", USAGE_THRESHOLD_REACHED)):
        body = json.dumps(payload, separators=(",", ":")).encode()
        response = await hooks.client.post(LAGO_PATH, content=body, headers=lago_headers(body, key))
        assert response.status_code == 200, response.text
        assert response.json() == {"received": True, "duplicate": False}
        sent[message_id("lago", key)] = (payload["webhook_type"], body)
    await _process(hooks)  # no handler takes them: handled as nothing to do

    messages = {m.id: m for m in await hooks.relay_messages()}
    assert set(messages) == set(sent)
    for id_, (kind, body) in sent.items():
        envelope = orjson.loads(messages[id_].body)
        assert (envelope["type"], envelope["source"]) == (kind, "lago")
        assert envelope["data"] == orjson.loads(body)
        assert messages[id_].body.endswith(body.decode() + "}"), "the body as Lago sent it"
    deliveries = await hooks.rows("SELECT message_id, endpoint_id FROM relay_deliveries")
    assert sorted((d.message_id, d.endpoint_id) for d in deliveries) == sorted(
        [(message_id("lago", "uk_alert"), alerts), (message_id("lago", "uk_usage"), thresholds)]
    )
    assert [r.status for r in await hooks.inbound()] == ["handled", "handled"]
