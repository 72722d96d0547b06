"""Lago's webhooks: verified by HMAC or RS256 JWT over the raw body, stored once per unique key."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import REGISTRY

from tests.conftest import LAGO_URL
from tests.webhooks.conftest import (
    LAGO_PATH,
    Hooks,
    lago_body,
    lago_headers,
    lago_hmac,
    lago_jwt,
)


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def test_hmac_webhook_sent_by_lago_is_stored_and_acknowledged(hooks: Hooks) -> None:
    lago = hooks.gateway.runtime.lago
    await lago.call(
        "POST",
        "/webhook_endpoints",
        json={
            "webhook_endpoint": {
                "webhook_url": f"http://gateway.test{LAGO_PATH}",
                "signature_algo": "hmac",
            }
        },
    )
    await lago.call("POST", "/customers", json={"customer": {"external_id": "acme"}})

    sent = await hooks.emulator.deliver_webhooks(hooks.client)

    assert [w.attempts for w in sent] == [[200]]
    rows = await hooks.inbound()
    assert [(r.source, r.provider_event_id, r.event_type, r.status) for r in rows] == [
        ("lago", sent[0].unique_key, "customer.created", "received")
    ]
    assert rows[0].body.encode() == sent[0].body
    assert [a.outcome for a in await hooks.audit("webhooks.inbound.received")] == ["stored"]


async def test_jwt_webhook_signed_with_a_key_pair_made_here_is_verified(hooks: Hooks) -> None:
    key = _new_rsa_key()
    hooks.emulator.rsa_private_key = key  # Lago serves this key's public half
    body = lago_body()

    response = await hooks.client.post(
        LAGO_PATH,
        content=body,
        headers=lago_headers(body, "uk_jwt_1", "jwt", **{"X-Lago-Signature": lago_jwt(body, key)}),
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    assert hooks.key_fetches == 1
    second = lago_body(lago_id="inv_2")
    again = await hooks.client.post(
        LAGO_PATH,
        content=second,
        headers=lago_headers(
            second, "uk_jwt_2", "jwt", **{"X-Lago-Signature": lago_jwt(second, key)}
        ),
    )
    assert again.status_code == 200
    assert hooks.key_fetches == 1, "the public key is cached"


async def test_jwt_webhook_sent_by_lago_is_verified_with_its_published_key(hooks: Hooks) -> None:
    lago = hooks.gateway.runtime.lago
    await lago.call(
        "POST",
        "/webhook_endpoints",
        json={
            "webhook_endpoint": {
                "webhook_url": f"http://gateway.test{LAGO_PATH}",
                "signature_algo": "jwt",
            }
        },
    )
    await lago.call("POST", "/customers", json={"customer": {"external_id": "acme"}})

    sent = await hooks.emulator.deliver_webhooks(hooks.client)

    assert [w.attempts for w in sent] == [[200]]
    assert len(await hooks.inbound()) == 1


async def test_rotated_lago_key_is_refetched_once_and_the_webhook_accepted(hooks: Hooks) -> None:
    old, new = _new_rsa_key(), _new_rsa_key()
    hooks.emulator.rsa_private_key = old
    first = lago_body(lago_id="inv_1")
    await hooks.client.post(
        LAGO_PATH,
        content=first,
        headers=lago_headers(first, "uk_1", "jwt", **{"X-Lago-Signature": lago_jwt(first, old)}),
    )
    hooks.emulator.rsa_private_key = new
    second = lago_body(lago_id="inv_2")

    response = await hooks.client.post(
        LAGO_PATH,
        content=second,
        headers=lago_headers(second, "uk_2", "jwt", **{"X-Lago-Signature": lago_jwt(second, new)}),
    )

    assert response.status_code == 200, response.text
    assert hooks.key_fetches == 2
    assert len(await hooks.inbound()) == 2


async def test_forged_jwts_cannot_make_the_gateway_hammer_lago(hooks: Hooks) -> None:
    hooks.emulator.rsa_private_key = _new_rsa_key()
    attacker = _new_rsa_key()

    statuses = []
    for index in range(20):
        body = lago_body(lago_id=f"inv_{index}")
        forged = lago_jwt(body, attacker)
        response = await hooks.client.post(
            LAGO_PATH,
            content=body,
            headers=lago_headers(body, f"uk_{index}", "jwt", **{"X-Lago-Signature": forged}),
        )
        statuses.append((response.status_code, response.json()["code"]))

    assert set(statuses) == {(401, "invalid_signature")}
    assert hooks.key_fetches <= 2, "first fetch plus at most one refetch per interval"
    assert await hooks.inbound() == []


@dataclass
class Case:
    """One hostile request: how it is built and how the gateway must refuse it."""

    name: str
    status: int
    reason: str
    body: bytes = field(default_factory=lago_body)
    headers: dict[str, str | None] = field(default_factory=dict)
    tamper: bytes | None = None  # the body actually sent, after signing ``body``


def _jwt_with(claims: dict[str, object], key: rsa.RSAPrivateKey | None, alg: str) -> str:
    return jwt.encode(claims, key, algorithm=alg)


def hostile_cases(lago_key: rsa.RSAPrivateKey) -> list[Case]:
    body = lago_body()
    other_key = _new_rsa_key()
    return [
        Case(
            "forged signature",
            401,
            "invalid_signature",
            headers={"X-Lago-Signature": "c2lnbmF0dXJlLW1hZGUtdXA="},
        ),
        Case(
            "body changed after signing",
            401,
            "invalid_signature",
            tamper=body.replace(b"1999", b"1"),
        ),
        Case(
            "signature for another key",
            401,
            "invalid_signature",
            headers={"X-Lago-Signature": lago_hmac(body, "another-organization-key")},
        ),
        Case("missing signature", 401, "missing_signature", headers={"X-Lago-Signature": None}),
        Case(
            "missing algorithm",
            400,
            "missing_signature_algorithm",
            headers={"X-Lago-Signature-Algorithm": None},
        ),
        Case(
            "unknown algorithm",
            400,
            "unknown_signature_algorithm",
            headers={"X-Lago-Signature-Algorithm": "sha1"},
        ),
        Case(
            "hmac signature sent as jwt",
            401,
            "malformed_signature",
            headers={"X-Lago-Signature-Algorithm": "jwt"},
        ),
        Case(
            "jwt from another key",
            401,
            "invalid_signature",
            headers={
                "X-Lago-Signature-Algorithm": "jwt",
                "X-Lago-Signature": lago_jwt(body, other_key),
            },
        ),
        Case(
            "jwt from another issuer",
            401,
            "invalid_issuer",
            headers={
                "X-Lago-Signature-Algorithm": "jwt",
                "X-Lago-Signature": lago_jwt(body, lago_key, "https://evil.test"),
            },
        ),
        Case(
            "jwt over another body",
            401,
            "invalid_signature",
            headers={
                "X-Lago-Signature-Algorithm": "jwt",
                "X-Lago-Signature": lago_jwt(lago_body(lago_id="x"), lago_key),
            },
        ),
        Case(
            "jwt without alg (none)",
            401,
            "malformed_signature",
            headers={
                "X-Lago-Signature-Algorithm": "jwt",
                "X-Lago-Signature": _jwt_with(
                    {"data": body.decode(), "iss": LAGO_URL}, None, "none"
                ),
            },
        ),
        Case("missing unique key", 400, "missing_unique_key", headers={"X-Lago-Unique-Key": None}),
        Case("not JSON", 400, "invalid_json", body=b"webhook_type=invoice.created"),
        Case("JSON without webhook_type", 400, "missing_webhook_type", body=b'{"object_type":"x"}'),
        Case("JSON array", 400, "invalid_json", body=b"[1,2]"),
        Case(
            "oversized",
            413,
            "payload_too_large",
            body=b'{"webhook_type":"x","pad":"' + b"a" * (1024 * 1024) + b'"}',
        ),
    ]


async def test_hostile_lago_requests_are_refused_and_nothing_is_stored_or_relayed(
    hooks: Hooks,
) -> None:
    lago_key = _new_rsa_key()
    hooks.emulator.rsa_private_key = lago_key
    cases = hostile_cases(lago_key)
    before = (
        REGISTRY.get_sample_value(
            "gateway_webhooks_inbound_rejected_total",
            {"source": "lago", "reason": "invalid_signature"},
        )
        or 0.0
    )

    for index, case in enumerate(cases):
        headers = {
            k: v
            for k, v in {**lago_headers(case.body, f"uk_{index}"), **case.headers}.items()
            if v is not None
        }
        sent = case.tamper if case.tamper is not None else case.body
        response = await hooks.client.post(LAGO_PATH, content=sent, headers=headers)
        assert (response.status_code, response.json()["code"]) == (case.status, case.reason), (
            case.name
        )

    await _process(hooks)
    assert await hooks.inbound() == []
    assert await hooks.relay_messages() == []
    rejected = await hooks.audit("webhooks.inbound.rejected")
    assert [
        orjson.loads(r.detail)["reason"] if isinstance(r.detail, str) else r.detail["reason"]
        for r in rejected
    ] == [case.reason for case in cases]
    after = REGISTRY.get_sample_value(
        "gateway_webhooks_inbound_rejected_total",
        {"source": "lago", "reason": "invalid_signature"},
    )
    assert after == before + sum(c.reason == "invalid_signature" for c in cases)


async def test_replayed_lago_webhook_is_acknowledged_as_duplicate_and_relayed_once(
    hooks: Hooks,
) -> None:
    body = lago_body()
    first = await hooks.client.post(LAGO_PATH, content=body, headers=lago_headers(body, "uk_1"))
    await _process(hooks)
    replay = await hooks.client.post(LAGO_PATH, content=body, headers=lago_headers(body, "uk_1"))
    fresh_key = await hooks.client.post(
        LAGO_PATH, content=body, headers=lago_headers(body, str(uuid.uuid4()))
    )
    await _process(hooks)

    assert first.json() == {"received": True, "duplicate": False}
    assert replay.json() == {"received": True, "duplicate": True}
    assert fresh_key.json() == {"received": True, "duplicate": True}, (
        "Lago signs only the body: a captured body under a new unique key is a replay"
    )
    assert len(await hooks.inbound()) == 1
    assert len(await hooks.relay_messages()) == 1
    outcomes = [a.outcome for a in await hooks.audit("webhooks.inbound.received")]
    assert outcomes == ["stored", "duplicate", "duplicate"]


async def test_concurrent_copies_of_one_webhook_store_one_row(hooks: Hooks) -> None:
    body = lago_body()
    answers = await asyncio.gather(
        *(
            hooks.client.post(LAGO_PATH, content=body, headers=lago_headers(body, "uk_same"))
            for _ in range(10)
        )
    )

    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 9
    assert len(await hooks.inbound()) == 1


async def test_unconfigured_hmac_key_refuses_every_hmac_webhook(database_url: str) -> None:
    from lago.emulator import EmulatorState
    from tests.conftest import make_settings, start_gateway

    gateway, manager = await start_gateway(make_settings(database_url), EmulatorState())
    try:
        body = lago_body()
        response = await gateway.client.post(
            LAGO_PATH, content=body, headers=lago_headers(body, "uk_1")
        )
    finally:
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)

    assert (response.status_code, response.json()["code"]) == (401, "hmac_key_not_configured")


async def _process(hooks: Hooks) -> None:
    from gateway.webhooks.processor import Processor
    from gateway.worker import WEBHOOK_HANDLERS

    while await Processor(hooks.gateway.runtime, WEBHOOK_HANDLERS).process_due():
        pass


async def test_received_webhook_is_audited_with_its_id_and_type(hooks: Hooks) -> None:
    body = lago_body()

    await hooks.client.post(
        LAGO_PATH, content=body, headers={**lago_headers(body, "uk_a"), "X-Request-Id": "req-1"}
    )

    rows = await hooks.rows(
        "SELECT actor, outcome, status, target, upstream, request_id, detail, at "
        "FROM audit_entries WHERE action = 'webhooks.inbound.received'"
    )
    assert len(rows) == 1
    row = rows[0]
    detail = orjson.loads(row.detail) if isinstance(row.detail, str) else row.detail
    assert (row.actor, row.outcome, row.status, row.target, row.upstream, row.request_id) == (
        "webhook:lago",
        "stored",
        200,
        "uk_a",
        "lago",
        "req-1",
    )
    assert detail == {"type": "invoice.created"}
    assert row.at is not None


async def test_unreachable_database_fails_the_request_instead_of_hanging(tmp_path: Path) -> None:
    from gateway.audit.service import entry
    from gateway.db import Database
    from gateway.webhooks.inbox import InboxWriter, Incoming

    database = Database(f"sqlite:///{tmp_path / 'missing' / 'gateway.db'}")
    writer = InboxWriter(database)
    item = Incoming(
        "lago",
        "uk_1",
        "invoice.created",
        "{}",
        "0" * 64,
        entry(actor="webhook:lago", action="webhooks.inbound.received", outcome="stored"),
    )
    try:
        with pytest.raises(Exception, match="unable to open database"):
            await asyncio.wait_for(writer.store(item), 5)
    finally:
        await database.dispose()


async def test_embedded_default_verifies_the_bundled_emulators_jwt_webhooks(
    tmp_path: Path,
) -> None:
    from asgi_lifespan import LifespanManager

    from gateway.app import create_app
    from gateway.migrations.runner import upgrade
    from tests.conftest import make_settings

    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(database_url)
    app = create_app(make_settings(database_url, lago_api_url="", lago_api_key=""))
    async with LifespanManager(app) as manager:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://gateway.test"
        )
        lago = app.state.parts.runtime.lago
        endpoint = {"webhook_url": f"http://gateway.test{LAGO_PATH}", "signature_algo": "jwt"}
        await lago.call("POST", "/webhook_endpoints", json={"webhook_endpoint": endpoint})
        await lago.call("POST", "/customers", json={"customer": {"external_id": "acme"}})

        sent = await app.state.emulator.state.lago.deliver_webhooks(client)
        await client.aclose()

    assert [w.attempts for w in sent] == [[200]]
