from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.audit.service import record
from tests.conftest import Gateway


async def _write(gateway: Gateway, count: int, action: str = "test.action") -> None:
    async with gateway.runtime.database.session() as session:
        for i in range(count):
            record(
                session,
                actor="tester",
                action=action,
                outcome="success",
                target=f"t{i}",
                target_ids=[f"t{i}", "shared"],
            )
        await session.commit()


async def test_audit_is_append_only(gateway: Gateway) -> None:
    await _write(gateway, 1)
    for statement in ("UPDATE audit_entries SET outcome = 'forged'", "DELETE FROM audit_entries"):
        with pytest.raises(DBAPIError):
            async with gateway.runtime.database.engine.begin() as conn:
                await conn.execute(text(statement))
    async with gateway.runtime.database.engine.connect() as conn:
        outcomes = (await conn.execute(text("SELECT outcome FROM audit_entries"))).scalars().all()
    assert outcomes == ["success"]


async def test_audit_pages_newest_first_with_cursor(gateway: Gateway) -> None:
    await _write(gateway, 5)
    headers = await gateway.headers("billing:read")
    first = (
        await gateway.client.get("/gateway/audit?limit=3&action=test.action", headers=headers)
    ).json()
    assert [e["target"] for e in first["entries"]] == ["t4", "t3", "t2"]
    second = (
        await gateway.client.get(
            f"/gateway/audit?limit=3&action=test.action&cursor={first['next_cursor']}",
            headers=headers,
        )
    ).json()
    assert [e["target"] for e in second["entries"]] == ["t1", "t0"]
    assert second["next_cursor"] is None


async def test_audit_filters_by_target_action_prefix_and_time(gateway: Gateway) -> None:
    await _write(gateway, 3)
    await _write(gateway, 1, action="other.thing")
    headers = await gateway.headers("billing:read")
    by_target = (await gateway.client.get("/gateway/audit?target=t1", headers=headers)).json()
    assert [e["target"] for e in by_target["entries"]] == ["t1"]
    shared = (
        await gateway.client.get("/gateway/audit?target=shared&action=test.*", headers=headers)
    ).json()
    assert len(shared["entries"]) == 3
    future = (
        await gateway.client.get(
            "/gateway/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=headers
        )
    ).json()
    assert future["entries"] == []
    naive = await gateway.client.get(
        "/gateway/audit", params={"since": "2020-01-01T00:00:00"}, headers=headers
    )
    assert naive.status_code == 422 and "since" in naive.json()["error_details"]


async def _write_rows(
    gateway: Gateway, rows: list[tuple[str, str | None, list[str] | None]]
) -> None:
    async with gateway.runtime.database.session() as session:
        for action, target, target_ids in rows:
            record(
                session,
                actor="tester",
                action=action,
                outcome="success",
                target=target,
                target_ids=target_ids,
            )
        await session.commit()


async def _targets(gateway: Gateway, **params: str) -> list[str | None]:
    headers = await gateway.headers("billing:read")
    response = await gateway.client.get("/gateway/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [e["target"] for e in reversed(response.json()["entries"])]


async def test_audit_filters_treat_like_wildcards_literally(gateway: Gateway) -> None:
    await _write_rows(
        gateway,
        [
            ("test.a", "%", None),
            ("test.a", "plain", None),
            ("test.a", "in_list", ["50%", "x_y"]),
            ("test.a", "a_b", None),
            ("test.a", "axb", None),
            ("test.a", "slash/", ["back\\slash", 'quo"te']),
            ("pct%.done", "p1", None),
            ("pctX.done", "p2", None),
            ("under_.done", "u1", None),
            ("underX.done", "u2", None),
        ],
    )
    assert await _targets(gateway, target="%") == ["%"]
    assert await _targets(gateway, target="50%") == ["in_list"]
    assert await _targets(gateway, target="x_y") == ["in_list"]
    assert await _targets(gateway, target="x%") == []
    assert await _targets(gateway, target="_") == []
    assert await _targets(gateway, target="a_b") == ["a_b"]
    assert await _targets(gateway, target="slash/") == ["slash/"]
    assert await _targets(gateway, target="back\\slash") == ["slash/"]
    assert await _targets(gateway, target='quo"te') == ["slash/"]
    assert await _targets(gateway, action="pct%*") == ["p1"]
    assert await _targets(gateway, action="under_*") == ["u1"]
    assert await _targets(gateway, action="%*") == []
    assert await _targets(gateway, action="pct*") == ["p1", "p2"]
    assert len(await _targets(gateway, action="*")) == 10


async def test_accepted_batch_writes_one_audit_row_with_targets(gateway: Gateway) -> None:
    from tests.usage.test_ingest import _seed

    await _seed(gateway)
    headers = await gateway.headers("events:write", "billing:read")
    events = [
        {
            "transaction_id": f"a{i}",
            "external_subscription_id": "sub_1",
            "code": "photo_generation",
            "timestamp": 1756684800,
        }
        for i in range(3)
    ]
    assert (
        await gateway.client.post("/api/v1/events/batch", json={"events": events}, headers=headers)
    ).status_code == 200
    rows = (
        await gateway.client.get("/gateway/audit?action=usage.events.batch", headers=headers)
    ).json()["entries"]
    assert len(rows) == 1
    assert rows[0]["target_ids"] == ["a0", "a1", "a2"] and rows[0]["outcome"] == "accepted"
    assert rows[0]["request_id"]


async def test_bulk_audit_rows_keep_every_column_the_session_path_keeps(gateway: Gateway) -> None:
    from gateway.audit.models import AuditEntry
    from gateway.audit.service import entry, record_many

    fields = {
        "actor": "worker:test",
        "action": "test.bulk",
        "outcome": "success",
        "target": "t-1",
        "target_ids": ["a", "b"],
        "upstream": "lago",
        "status": 200,
        "latency_ms": 12.5,
        "detail": {"n": 2},
    }
    async with gateway.runtime.database.engine.begin() as conn:
        await record_many(conn, [entry(**fields)])
    async with gateway.runtime.database.session() as session:
        record(session, **{**fields, "action": "test.session"})
        await session.commit()

    columns = [c.name for c in AuditEntry.__table__.columns if c.name not in ("id", "at")]  # type: ignore[attr-defined]
    async with gateway.runtime.database.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT action, {', '.join(columns)} FROM audit_entries "
                    "WHERE action LIKE 'test.%' ORDER BY id"
                )
            )
        ).all()

    bulk, session_row = (dict(row._mapping) for row in rows)
    for row in (bulk, session_row):
        row.pop("action")
        row["target_ids"] = _decoded(row["target_ids"])
        row["detail"] = _decoded(row["detail"])
    assert bulk == session_row
    assert bulk["target_ids"] == ["a", "b"]
    assert bulk["latency_ms"] == 12.5
    assert bulk["detail"] == {"n": 2}


def _decoded(value: object) -> object:
    import json

    return json.loads(value) if isinstance(value, str) else value
