from __future__ import annotations

import pytest
from sqlalchemy import text

from gateway.auth.service import hash_key, revoke_key
from tests.conftest import Gateway

EVENT = {"event": {"transaction_id": "t1", "external_subscription_id": "s1", "code": "c"}}


async def test_missing_or_unknown_key_is_401_in_lagos_shape(gateway: Gateway) -> None:
    for headers in ({}, {"Authorization": "Bearer gw_nope_nope"}, {"Authorization": "Basic x"}):
        response = await gateway.client.post("/api/v1/events", json=EVENT, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"status": 401, "error": "Unauthorized", "code": "unauthorized"}


async def test_right_key_wrong_scope_is_403(gateway: Gateway) -> None:
    headers = await gateway.headers("billing:read")
    response = await gateway.client.post("/api/v1/events", json=EVENT, headers=headers)
    assert response.status_code == 403
    body = response.json()
    assert (
        body["status"] == 403 and body["error"] == "Forbidden" and body["code"] == "missing_scope"
    )


async def test_admin_scope_admits_every_route(gateway: Gateway) -> None:
    headers = await gateway.headers("admin")
    response = await gateway.client.get("/gateway/audit", headers=headers)
    assert response.status_code == 200


async def test_keys_are_stored_only_as_hashes(gateway: Gateway) -> None:
    key = await gateway.key("events:write", name="hashed")
    async with gateway.runtime.database.engine.connect() as conn:
        row = (
            (await conn.execute(text("SELECT * FROM api_keys WHERE name = 'hashed'")))
            .mappings()
            .one()
        )
    assert key not in {str(value) for value in row.values()}
    assert row["key_hash"] == hash_key(key)


async def test_revoked_key_stops_working(gateway: Gateway) -> None:
    key = await gateway.key("billing:read", name="to-revoke")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await gateway.client.get("/gateway/audit", headers=headers)).status_code == 200
    async with gateway.runtime.database.session() as session:
        await revoke_key(session, "to-revoke")
        await session.commit()
    assert (await gateway.client.get("/gateway/audit", headers=headers)).status_code == 401


async def test_unknown_scope_is_refused(gateway: Gateway) -> None:
    from gateway.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        await gateway.key("events:delete")
