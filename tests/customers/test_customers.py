"""Customers through the gateway: Lago upsert, Stripe link, errors that leave no partial state."""

from __future__ import annotations

import asyncio

import httpx

from gateway.customers.linking import idempotency_key
from lago.emulator import EmulatorState
from tests.billing.support import audit_rows, links, ok, outcomes
from tests.conftest import Gateway, make_settings, start_gateway
from tests.integrations.fake_stripe import FakeStripe

ACME = {
    "external_id": "acme",
    "name": "Acme",
    "email": "billing@acme.test",
    "currency": "USD",
    "billing_configuration": {
        "payment_provider": "stripe",
        "sync_with_provider": True,
        "provider_payment_methods": ["card"],
        "document_locale": "fr",
    },
}


async def test_upsert_links_a_new_stripe_customer_and_lago_gets_no_payment_provider(
    linked: Gateway, stripe: FakeStripe
) -> None:
    headers = await linked.headers("billing:write")
    body = ok(
        await linked.client.post("/api/v1/customers", json={"customer": ACME}, headers=headers)
    )
    lago_customer = linked.emulator.customers["acme"]
    assert body["customer"]["lago_id"] == lago_customer["lago_id"]
    assert lago_customer["email"] == "billing@acme.test"
    assert "payment_provider" not in lago_customer["billing_configuration"]
    assert "provider_customer_id" not in lago_customer["billing_configuration"]
    assert lago_customer["billing_configuration"]["document_locale"] == "fr"
    [stripe_id] = stripe.customers
    assert stripe.customers[stripe_id]["metadata"]["external_id"] == "acme"
    assert stripe.creates[0].headers["idempotency-key"] == idempotency_key("acme")
    link = (await links(linked))["acme"]
    assert (link.lago_customer_id, link.stripe_customer_id) == (lago_customer["lago_id"], stripe_id)
    rows = await audit_rows(linked)
    assert outcomes(rows) == [
        ("customers.stripe_link", "success", "stripe", 200),
        ("customers.upsert", "success", "lago", 200),
    ]
    assert rows[1].target == "acme" and rows[1].latency_ms is not None
    assert rows[1].detail == {"stripe_customer_id": stripe_id}


async def test_second_upsert_updates_lago_and_reuses_the_link(
    linked: Gateway, stripe: FakeStripe
) -> None:
    headers = await linked.headers("billing:write")
    ok(await linked.client.post("/api/v1/customers", json={"customer": ACME}, headers=headers))
    renamed = {"external_id": "acme", "name": "Acme Inc", "email": None}
    ok(await linked.client.post("/api/v1/customers", json={"customer": renamed}, headers=headers))
    assert linked.emulator.customers["acme"]["name"] == "Acme Inc"
    assert linked.emulator.customers["acme"]["email"] == "billing@acme.test"  # null = unset
    assert len(stripe.requests) == 1
    assert [r.action for r in await audit_rows(linked)].count("customers.stripe_link") == 1


async def test_concurrent_identical_upserts_create_one_stripe_customer(
    linked: Gateway, stripe: FakeStripe
) -> None:
    headers = await linked.headers("billing:write")
    answers = await asyncio.gather(
        *[
            linked.client.post("/api/v1/customers", json={"customer": ACME}, headers=headers)
            for _ in range(6)
        ]
    )
    assert {r.status_code for r in answers} == {200}
    assert len(stripe.customers) == 1
    assert len({r.json()["customer"]["lago_id"] for r in answers}) == 1
    [stripe_id] = stripe.customers
    assert {link.stripe_customer_id for link in (await links(linked)).values()} == {stripe_id}
    assert len(linked.emulator.customers) == 1


async def test_a_given_stripe_customer_is_adopted_not_created(
    linked: Gateway, stripe: FakeStripe
) -> None:
    existing = stripe.add_customer("billing@acme.test")
    headers = await linked.headers("billing:write")
    customer = {**ACME, "billing_configuration": {"provider_customer_id": existing}}
    ok(await linked.client.post("/api/v1/customers", json={"customer": customer}, headers=headers))
    assert stripe.creates == []
    assert (await links(linked))["acme"].stripe_customer_id == existing
    assert (
        linked.emulator.customers["acme"]["billing_configuration"].get("provider_customer_id")
        is None
    )
    adopted = (await audit_rows(linked, "customers.stripe_link"))[0]
    assert adopted.detail == {"stripe_customer_id": existing, "via": "adopted"}


async def test_adopting_an_unknown_stripe_customer_is_lagos_third_party_error(
    linked: Gateway, stripe: FakeStripe
) -> None:
    headers = await linked.headers("billing:write")
    customer = {**ACME, "billing_configuration": {"provider_customer_id": "cus_missing"}}
    response = await linked.client.post(
        "/api/v1/customers", json={"customer": customer}, headers=headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "third_party_error"
    assert response.json()["error_details"]["third_party"] == "Stripe"
    assert await links(linked) == {}
    assert linked.emulator.customers == {}
    assert outcomes(await audit_rows(linked)) == [
        ("customers.stripe_link", "rejected", "stripe", 422)
    ]


async def test_lago_collection_mode_never_creates_a_stripe_customer(
    lago_collects: Gateway, stripe: FakeStripe
) -> None:
    headers = await lago_collects.headers("billing:write")
    client = lago_collects.client
    ok(await client.post("/api/v1/customers", json={"customer": ACME}, headers=headers))
    assert stripe.requests == []
    billing = lago_collects.emulator.customers["acme"]["billing_configuration"]
    assert billing["payment_provider"] == "stripe"
    assert billing["sync_with_provider"] is True

    existing = stripe.add_customer()
    adopt = {"external_id": "zeta", "billing_configuration": {"provider_customer_id": existing}}
    ok(await client.post("/api/v1/customers", json={"customer": adopt}, headers=headers))
    assert stripe.creates == []
    billing = lago_collects.emulator.customers["zeta"]["billing_configuration"]
    assert billing["payment_provider"] == "stripe"
    assert billing["provider_customer_id"] == existing
    assert billing["sync_with_provider"] is False
    assert (await links(lago_collects))["zeta"].stripe_customer_id == existing


async def test_lago_down_after_stripe_keeps_the_link_audits_unavailable_and_a_retry_reuses_it(
    linked: Gateway, stripe: FakeStripe
) -> None:
    headers = await linked.headers("billing:write")
    linked.emulator.faults.outage(60)
    down = await linked.client.post("/api/v1/customers", json={"customer": ACME}, headers=headers)
    assert down.status_code == 503
    assert down.headers["retry-after"]
    [stripe_id] = stripe.customers
    link = (await links(linked))["acme"]
    assert (link.stripe_customer_id, link.lago_customer_id) == (stripe_id, None)
    assert outcomes(await audit_rows(linked)) == [
        ("customers.stripe_link", "success", "stripe", 200),
        ("customers.upsert", "unavailable", "lago", 503),
    ]

    linked.emulator.faults.clear()
    ok(await linked.client.post("/api/v1/customers", json={"customer": ACME}, headers=headers))
    assert list(stripe.customers) == [stripe_id]
    assert len(stripe.creates) == 1
    link = (await links(linked))["acme"]
    assert link.lago_customer_id == linked.emulator.customers["acme"]["lago_id"]


async def test_stripe_down_is_503_and_leaves_no_link_and_no_lago_customer(
    linked: Gateway, stripe: FakeStripe
) -> None:
    stripe.down = True
    headers = await linked.headers("billing:write")
    response = await linked.client.post(
        "/api/v1/customers", json={"customer": ACME}, headers=headers
    )
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert await links(linked) == {}
    assert linked.emulator.customers == {}
    assert outcomes(await audit_rows(linked)) == [
        ("customers.stripe_link", "unavailable", "stripe", 503)
    ]


async def test_a_missing_external_id_is_422_naming_it_before_any_upstream_call(
    linked: Gateway, stripe: FakeStripe
) -> None:
    headers = await linked.headers("billing:write")
    response = await linked.client.post("/api/v1/customers", json={"customer": {}}, headers=headers)
    assert response.status_code == 422
    assert response.json()["error_details"] == {"external_id": ["value_is_mandatory"]}
    wrong = await linked.client.post(
        "/api/v1/customers", json={"customer": {"external_id": "x", "email": 5}}, headers=headers
    )
    assert wrong.json()["error_details"] == {"email": ["value_is_invalid"]}
    no_root = await linked.client.post("/api/v1/customers", json={"client": {}}, headers=headers)
    assert no_root.status_code == 400
    assert stripe.requests == [] and linked.emulator.customers == {}
    assert outcomes(await audit_rows(linked)) == [
        ("customers.upsert", "rejected", None, 422),
        ("customers.upsert", "rejected", None, 422),
    ]


async def test_a_key_without_the_scope_is_403_and_changes_nothing(
    linked: Gateway, stripe: FakeStripe
) -> None:
    reader = await linked.headers("billing:read")
    refused = await linked.client.post("/api/v1/customers", json={"customer": ACME}, headers=reader)
    assert refused.status_code == 403
    events_only = await linked.headers("events:write")
    assert (await linked.client.get("/api/v1/customers", headers=events_only)).status_code == 403
    assert (await linked.client.get("/api/v1/customers")).status_code == 401
    assert stripe.requests == [] and linked.emulator.customers == {}
    assert await audit_rows(linked) == []
    assert await links(linked) == {}


async def test_list_get_and_delete_pass_lagos_shapes_through(gateway: Gateway) -> None:
    writer = await gateway.headers("billing:write")
    reader = await gateway.headers("billing:read")
    for name in ("a", "b", "c"):
        ok(
            await gateway.client.post(
                "/api/v1/customers", json={"customer": {"external_id": name}}, headers=writer
            )
        )
    page = ok(await gateway.client.get("/api/v1/customers?page=2&per_page=2", headers=reader))
    assert page["meta"] == {
        "current_page": 2,
        "next_page": None,
        "prev_page": 1,
        "total_pages": 2,
        "total_count": 3,
    }
    assert [c["external_id"] for c in page["customers"]] == ["c"]
    assert (
        ok(await gateway.client.get("/api/v1/customers/b", headers=reader))["customer"][
            "external_id"
        ]
        == "b"
    )
    missing = await gateway.client.get("/api/v1/customers/nobody", headers=reader)
    assert missing.status_code == 404
    assert missing.json() == {"status": 404, "error": "Not Found", "code": "customer_not_found"}
    ok(await gateway.client.delete("/api/v1/customers/b", headers=writer))
    assert "b" not in gateway.emulator.customers
    assert outcomes(await audit_rows(gateway, "customers.delete")) == [
        ("customers.delete", "success", "lago", 200)
    ]


async def test_without_stripe_the_link_keeps_lagos_id_and_provider_fields_are_dropped(
    gateway: Gateway,
) -> None:
    writer = await gateway.headers("billing:write")
    ok(await gateway.client.post("/api/v1/customers", json={"customer": ACME}, headers=writer))
    assert "payment_provider" not in gateway.emulator.customers["acme"]["billing_configuration"]
    link = (await links(gateway))["acme"]
    assert link.stripe_customer_id is None
    assert link.lago_customer_id == gateway.emulator.customers["acme"]["lago_id"]


async def test_lago_unreachable_is_503_with_retry_after_not_a_hang(
    database_url: str, emulator: EmulatorState
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("no route", request=request)

    gw, manager = await start_gateway(
        make_settings(database_url), emulator, lago_transport=httpx.MockTransport(refuse)
    )
    try:
        writer = await gw.headers("billing:write")
        response = await asyncio.wait_for(
            gw.client.post("/api/v1/customers", json={"customer": ACME}, headers=writer), 10
        )
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["code"] == "upstream_unavailable"
        assert outcomes(await audit_rows(gw)) == [("customers.upsert", "unavailable", "lago", 503)]
    finally:
        await gw.client.aclose()
        await manager.__aexit__(None, None, None)
