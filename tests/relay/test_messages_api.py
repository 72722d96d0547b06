from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import Gateway
from tests.relay.conftest import create_endpoint, enqueue, eventually, sending
from tests.relay.receiver import Receiver


async def _get(gw: Gateway, path: str, **params: Any) -> Any:
    response = await gw.client.get(path, params=params, headers=await gw.headers("billing:read"))
    assert response.status_code == 200, response.text
    return response.json()


async def test_rotation_signs_with_both_secrets_for_a_day_then_only_the_new_one(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    created = await create_endpoint(relay_gateway, filter_types=["*"])
    old = created["secret"]
    admin = await relay_gateway.headers("admin")
    ep = f"/gateway/endpoints/{created['endpoint']['id']}"
    new = (await relay_gateway.client.post(f"{ep}/secret/rotate", headers=admin)).json()["secret"]
    receiver.secrets = [new]
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created")
        await eventually(lambda: receiver.received)
    first = receiver.received[0]
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(first.body, first.headers)
    Webhook(new).verify(first.body, first.headers)

    async with relay_gateway.runtime.database.engine.begin() as conn:
        await conn.execute(text("UPDATE relay_endpoints SET previous_secret_expires_at = 1"))
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m2", "invoice.created")
        await eventually(lambda: len(receiver.received) == 2)
    second = receiver.received[1]
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(second.body, second.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(second.body, second.headers)


async def test_redeliver_sends_the_same_message_again_under_the_same_id(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    await create_endpoint(relay_gateway, "/a", ["*"])
    admin = await relay_gateway.headers("admin")
    async with sending(relay_gateway, receiver):
        await enqueue(relay_gateway, "m1", "invoice.created", {"amount": 5})
        await eventually(lambda: receiver.received)
        late = (await create_endpoint(relay_gateway, "/late", ["customer.*"]))["endpoint"]
        again = await relay_gateway.client.post("/gateway/messages/m1/redeliver", headers=admin)
        assert again.status_code == 200, again.text
        assert len(again.json()["endpoint_ids"]) == 1
        await eventually(lambda: len(receiver.received) == 2)
        # One endpoint explicitly, even one whose filters do not match.
        one = await relay_gateway.client.post(
            "/gateway/messages/m1/redeliver", params={"endpoint_id": late["id"]}, headers=admin
        )
        assert one.json()["endpoint_ids"] == [late["id"]]
        await eventually(lambda: receiver.at("/late"))
    assert receiver.counts == {"m1": 3}
    assert len({r.body for r in receiver.received}) == 1
    found = (await _get(relay_gateway, "/gateway/messages/m1"))["message"]
    assert [a["outcome"] for a in found["attempts"]] == ["succeeded"] * 3
    assert (
        await relay_gateway.client.post("/gateway/messages/nope/redeliver", headers=admin)
    ).status_code == 404
    audit = await relay_gateway.client.get(
        "/gateway/audit", params={"action": "relay.message.redeliver"}, headers=admin
    )
    assert [e["target"] for e in audit.json()["entries"]] == ["m1", "m1"]


async def test_recover_requeues_what_failed_since_a_time(
    relay_gateway: Gateway, receiver: Receiver
) -> None:
    ep = (await create_endpoint(relay_gateway, filter_types=["*"]))["endpoint"]
    admin = await relay_gateway.headers("admin")
    receiver.down = True
    before = datetime.now(UTC) - timedelta(seconds=5)
    async with sending(relay_gateway, receiver):
        for i in range(5):
            await enqueue(relay_gateway, f"m{i}", "invoice.created")
        await eventually(lambda: _count(relay_gateway, "failed", 5))
        receiver.down = False
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        none = await relay_gateway.client.post(
            f"/gateway/endpoints/{ep['id']}/recover", params={"since": future}, headers=admin
        )
        assert none.json()["message_ids"] == []
        response = await relay_gateway.client.post(
            f"/gateway/endpoints/{ep['id']}/recover",
            params={"since": before.isoformat()},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        assert response.json()["message_ids"] == [f"m{i}" for i in range(5)]
        await eventually(lambda: len(receiver.received) == 5)
    assert receiver.counts == {f"m{i}": 1 for i in range(5)}
    naive = await relay_gateway.client.post(
        f"/gateway/endpoints/{ep['id']}/recover",
        params={"since": "2024-01-01T00:00:00"},
        headers=admin,
    )
    assert naive.status_code == 422
    missing = await relay_gateway.client.post(
        "/gateway/endpoints/ep_nope/recover", params={"since": before.isoformat()}, headers=admin
    )
    assert missing.status_code == 404


async def _count(gw: Gateway, status: str, expected: int) -> bool:
    page = await _get(gw, "/gateway/messages", status=status)
    return len(page["messages"]) == expected


async def test_messages_list_filters_and_pages(relay_gateway: Gateway, receiver: Receiver) -> None:
    inv = (await create_endpoint(relay_gateway, "/inv", ["invoice.*"]))["endpoint"]
    await create_endpoint(relay_gateway, "/pay", ["payment_intent.*"])
    for i in range(5):
        await enqueue(relay_gateway, f"inv{i}", "invoice.created")
    await enqueue(relay_gateway, "pi1", "payment_intent.succeeded", source="stripe")
    await enqueue(relay_gateway, "cus1", "customer.created")
    receiver.answer = lambda path, n: (500, {}, b"") if path == "/pay" else (204, {}, b"")
    async with sending(relay_gateway, receiver):
        await eventually(lambda: _count(relay_gateway, "delivered", 5))
        await eventually(lambda: _count(relay_gateway, "failed", 1))

    everything = await _get(relay_gateway, "/gateway/messages")
    assert [m["id"] for m in everything["messages"]] == [
        "cus1",
        "pi1",
        "inv4",
        "inv3",
        "inv2",
        "inv1",
        "inv0",
    ]
    assert everything["next_cursor"] is None
    statuses = {m["id"]: m["status"] for m in everything["messages"]}
    assert statuses["cus1"] == "no_endpoints"
    assert statuses["pi1"] == "failed"
    assert statuses["inv0"] == "delivered"

    def ids(page: dict[str, Any]) -> list[str]:
        return [m["id"] for m in page["messages"]]

    assert ids(await _get(relay_gateway, "/gateway/messages", source="stripe")) == ["pi1"]
    assert ids(await _get(relay_gateway, "/gateway/messages", type="payment_intent.*")) == ["pi1"]
    assert ids(await _get(relay_gateway, "/gateway/messages", type="customer.created")) == ["cus1"]
    assert len(ids(await _get(relay_gateway, "/gateway/messages", type="invoice.*"))) == 5
    assert len(ids(await _get(relay_gateway, "/gateway/messages", endpoint=inv["id"]))) == 5
    assert ids(await _get(relay_gateway, "/gateway/messages", status="failed")) == ["pi1"]
    assert (
        ids(await _get(relay_gateway, "/gateway/messages", endpoint=inv["id"], status="failed"))
        == []
    )

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await _get(relay_gateway, "/gateway/messages", **params)
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids(everything)

    detail = (await _get(relay_gateway, "/gateway/messages/pi1"))["message"]
    assert detail["payload"]["source"] == "stripe"
    assert detail["deliveries"][0]["status"] == "failed"
    assert detail["attempts"][0]["status"] == 500
    missing = await relay_gateway.client.get(
        "/gateway/messages/nope", headers=await relay_gateway.headers("billing:read")
    )
    assert missing.status_code == 404
    bad = await relay_gateway.client.get(
        "/gateway/messages",
        params={"status": "weird"},
        headers=await relay_gateway.headers("billing:read"),
    )
    assert bad.status_code == 422
