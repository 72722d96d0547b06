"""Stripe's webhooks: ``Stripe-Signature`` checked by the stripe library, stored once per
event id."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson

from tests.webhooks.conftest import (
    STRIPE_OLD_SECRET,
    STRIPE_PATH,
    Hooks,
    stripe_event,
    stripe_header,
)
from tests.webhooks.test_lago_inbound import _process


def _headers(signature: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return headers


async def test_event_signed_as_stripe_signs_is_stored_and_acknowledged(hooks: Hooks) -> None:
    body = stripe_event("evt_1", "payment_intent.succeeded")

    response = await hooks.client.post(
        STRIPE_PATH, content=body, headers=_headers(stripe_header(body))
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    rows = await hooks.inbound()
    assert [(r.source, r.provider_event_id, r.event_type, r.status) for r in rows] == [
        ("stripe", "evt_1", "payment_intent.succeeded", "received")
    ]
    assert rows[0].body.encode() == body


async def test_every_secret_in_rotation_is_accepted(hooks: Hooks) -> None:
    old = stripe_event("evt_old")
    both = stripe_event("evt_both")
    # During a roll Stripe sends one v1 per secret.
    rolled = stripe_header(both) + "," + stripe_header(both, STRIPE_OLD_SECRET).split(",")[1]

    signed_old = await hooks.client.post(
        STRIPE_PATH, content=old, headers=_headers(stripe_header(old, STRIPE_OLD_SECRET))
    )
    signed_both = await hooks.client.post(STRIPE_PATH, content=both, headers=_headers(rolled))

    assert signed_old.status_code == 200, signed_old.text
    assert signed_both.status_code == 200, signed_both.text


@dataclass
class Case:
    name: str
    status: int
    reason: str
    body: bytes = field(default_factory=stripe_event)
    signature: str | None = ""  # "" means: signed correctly now
    tamper: bytes | None = None


def hostile_cases() -> list[Case]:
    body = stripe_event()
    now = int(time.time())
    good = stripe_header(body, at=now)
    return [
        Case("forged signature", 401, "invalid_signature", signature=f"t={now},v1={'ab' * 32}"),
        Case(
            "body changed after signing",
            401,
            "invalid_signature",
            signature=good,
            tamper=body.replace(b"1999", b"1"),
        ),
        Case(
            "signature for another secret",
            401,
            "invalid_signature",
            signature=stripe_header(body, "whsec_someone_else", at=now),
        ),
        Case(
            "stale timestamp", 401, "stale_timestamp", signature=stripe_header(body, at=now - 301)
        ),
        Case(
            "timestamp moved forward",
            401,
            "invalid_signature",
            signature=good.replace(f"t={now}", f"t={now + 5}"),
        ),
        Case("missing header", 401, "missing_signature", signature=None),
        Case("missing timestamp", 401, "missing_timestamp", signature=good.split(",")[1]),
        Case(
            "malformed timestamp",
            401,
            "malformed_signature",
            signature=good.replace(f"t={now}", "t=yesterday"),
        ),
        Case("only a v0 signature", 401, "missing_signature", signature=good.replace("v1=", "v0=")),
        Case("not JSON", 400, "invalid_json", body=b"id=evt_1&type=charge.succeeded"),
        Case("not UTF-8", 400, "invalid_json", body=b"\xff\xfe{}"),
        Case(
            "without an event id",
            400,
            "missing_event_id",
            body=b'{"object":"event","type":"charge.succeeded"}',
        ),
        Case("without a type", 400, "missing_event_type", body=b'{"id":"evt_2","object":"event"}'),
        Case(
            "oversized",
            413,
            "payload_too_large",
            body=b'{"id":"evt_3","type":"x","pad":"' + b"a" * (1024 * 1024) + b'"}',
        ),
    ]


async def test_hostile_stripe_requests_are_refused_and_nothing_is_stored_or_relayed(
    hooks: Hooks,
) -> None:
    cases = hostile_cases()

    for case in cases:
        signature = stripe_header(case.body) if case.signature == "" else case.signature
        sent = case.tamper if case.tamper is not None else case.body
        response = await hooks.client.post(STRIPE_PATH, content=sent, headers=_headers(signature))
        assert (response.status_code, response.json()["code"]) == (case.status, case.reason), (
            case.name
        )

    await _process(hooks)
    assert await hooks.inbound() == []
    assert await hooks.relay_messages() == []
    rejected = await hooks.audit("webhooks.inbound.rejected")
    reasons = [orjson.loads(r.detail) if isinstance(r.detail, str) else r.detail for r in rejected]
    assert [r["reason"] for r in reasons] == [case.reason for case in cases]
    assert all(r.actor == "webhook:stripe" and r.outcome == "rejected" for r in rejected)


async def test_redelivered_stripe_event_is_a_duplicate_and_relayed_once(hooks: Hooks) -> None:
    body = stripe_event("evt_9")
    first = await hooks.client.post(
        STRIPE_PATH, content=body, headers=_headers(stripe_header(body))
    )
    await _process(hooks)
    # Stripe's retry: same event id, a later timestamp, a changed pending_webhooks count.
    retried = body.replace(b'"pending_webhooks": 1', b'"pending_webhooks": 0')
    again = await hooks.client.post(
        STRIPE_PATH,
        content=retried,
        headers=_headers(stripe_header(retried, at=int(time.time()) + 1)),
    )
    replay = await hooks.client.post(
        STRIPE_PATH, content=body, headers=_headers(stripe_header(body))
    )
    await _process(hooks)

    assert first.json()["duplicate"] is False
    assert again.json()["duplicate"] is True
    assert replay.json()["duplicate"] is True
    assert len(await hooks.inbound()) == 1
    messages = await hooks.relay_messages()
    assert [(m.type, m.source) for m in messages] == [("payment_intent.succeeded", "stripe")]
