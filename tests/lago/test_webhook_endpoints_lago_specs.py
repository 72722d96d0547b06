"""Lago's spec/requests/api/v1/webhook_endpoints_controller_spec.rb, ported to the emulator.

Each test names the ``describe``/``context``/``it`` it ports. Not ported: API key
permissions and security logs. Lago's organization factory brings one endpoint of its own
(the spec's index counts 3 for 2 created); an emulated organization starts with none.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = pytest.mark.asyncio

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def create(lago: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await lago.post("/webhook_endpoints", json={"webhook_endpoint": params})


async def created(lago: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await create(lago, **{"webhook_url": "https://hooks.test/a", **params})
    assert response.status_code == 200, response.text
    endpoint: dict[str, Any] = response.json()["webhook_endpoint"]
    return endpoint


async def update(lago: httpx.AsyncClient, lago_id: str, **params: Any) -> httpx.Response:
    return await lago.put(f"/webhook_endpoints/{lago_id}", json={"webhook_endpoint": params})


async def test_create_with_valid_parameters(lago: httpx.AsyncClient) -> None:
    """webhook_endpoints_controller_spec.rb: POST, context "with valid parameters", it
    "returns a success"."""
    params = {
        "webhook_url": "https://hooks.test/a",
        "signature_algo": "jwt",
        "name": "Test Webhook",
        "event_types": ["customer.created", "customer.updated"],
    }

    response = await create(lago, **params)

    assert response.status_code == 200
    endpoint = response.json()["webhook_endpoint"]
    assert {key: endpoint[key] for key in params} == params


async def test_create_without_signature_algo_signs_with_jwt(lago: httpx.AsyncClient) -> None:
    """WebhookEndpoints::CreateService: ``signature_algo&.to_sym || :jwt``."""
    assert (await created(lago))["signature_algo"] == "jwt"


@pytest.mark.parametrize("send", [create, "update"])
async def test_event_types_not_a_list_is_must_be_array(lago: httpx.AsyncClient, send: Any) -> None:
    """webhook_endpoints_controller_spec.rb: POST and PUT, context "when event_types is
    invalid", it "returns unprocessable_content error"."""
    if send == "update":
        response = await update(lago, (await created(lago))["lago_id"], event_types="wrong")
    else:
        response = await send(lago, webhook_url="https://hooks.test/b", event_types="wrong")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"event_types": ["must_be_array"]}


@pytest.mark.parametrize("send", [create, "update"])
async def test_unknown_event_types_are_listed(lago: httpx.AsyncClient, send: Any) -> None:
    """webhook_endpoints_controller_spec.rb: POST and PUT, context "when event_types contains
    invalid types", it "returns unprocessable_content error"."""
    if send == "update":
        response = await update(lago, (await created(lago))["lago_id"], event_types=["wrong.type"])
    else:
        response = await send(lago, webhook_url="https://hooks.test/b", event_types=["wrong.type"])

    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "event_types": ['contains invalid types: ["wrong.type"]']
    }


@pytest.mark.parametrize("send", [create, "update"])
async def test_star_event_types_is_every_type(lago: httpx.AsyncClient, send: Any) -> None:
    """webhook_endpoints_controller_spec.rb: POST and PUT, context "when event_types is
    [*]", it "returns a success" with ``event_types`` null."""
    if send == "update":
        response = await update(lago, (await created(lago))["lago_id"], event_types=["*"])
    else:
        response = await send(lago, webhook_url="https://hooks.test/b", event_types=["*"])

    assert response.status_code == 200
    assert response.json()["webhook_endpoint"]["event_types"] is None


async def test_event_types_are_normalized(lago: httpx.AsyncClient) -> None:
    """WebhookEndpoint#normalize_event_types: stripped, lower-cased, blanks and repeats
    dropped."""
    endpoint = await created(
        lago, event_types=[" Invoice.Created ", "invoice.created", "", None, "invoice.voided"]
    )

    assert endpoint["event_types"] == ["invoice.created", "invoice.voided"]


@pytest.mark.parametrize(
    ("url", "errors"),
    [
        (None, ["value_is_missing", "url_is_invalid"]),
        ("", ["value_is_missing", "url_is_invalid"]),
        ("ftp://hooks.test", ["url_is_invalid"]),
        ("hooks.test/path", ["url_is_invalid"]),
    ],
)
async def test_webhook_url_must_be_an_http_url(
    lago: httpx.AsyncClient, url: str | None, errors: list[str]
) -> None:
    """WebhookEndpoint: ``validates :webhook_url, presence: true, url: true`` (UrlValidator)."""
    response = await create(lago, webhook_url=url, name="x")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"webhook_url": errors}


async def test_an_unknown_signature_algo_is_a_500(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """WebhookEndpoint's ``signature_algo`` enum raises ArgumentError, which
    WebhookEndpoints::CreateService does not rescue."""
    response = await create(lago, webhook_url="https://hooks.test/a", signature_algo="rsa")

    assert response.status_code == 500
    assert state.webhook_endpoints == {}


async def test_index_returns_every_endpoint(lago: httpx.AsyncClient) -> None:
    """webhook_endpoints_controller_spec.rb: GET, it "returns all webhook endpoints from
    organization"."""
    await created(lago)
    await created(lago, webhook_url="https://hooks.test/b")

    response = await lago.get("/webhook_endpoints")

    assert response.status_code == 200
    assert response.json()["meta"]["total_count"] == 2


async def test_show_returns_the_endpoint(lago: httpx.AsyncClient) -> None:
    """webhook_endpoints_controller_spec.rb: GET /:id, context "with existing id"."""
    endpoint = await created(lago)

    response = await lago.get(f"/webhook_endpoints/{endpoint['lago_id']}")

    assert response.status_code == 200
    assert response.json()["webhook_endpoint"]["lago_id"] == endpoint["lago_id"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_an_unknown_endpoint_is_404(lago: httpx.AsyncClient, method: str) -> None:
    """webhook_endpoints_controller_spec.rb: GET, PUT and DELETE, context "with not existing
    id" / "when webhook endpoint does not exist"."""
    body = {"webhook_endpoint": {"name": "x"}} if method == "PUT" else None

    response = await lago.request(method, f"/webhook_endpoints/{UNKNOWN}", json=body)

    assert response.status_code == 404
    assert response.json()["code"] == "webhook_endpoint_not_found"


async def test_destroy_returns_the_deleted_endpoint(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """webhook_endpoints_controller_spec.rb: DELETE, it "deletes a webhook endpoint" and it
    "returns deleted webhook_endpoint"."""
    endpoint = await created(lago, name="hooks", event_types=["invoice.created"])

    response = await lago.delete(f"/webhook_endpoints/{endpoint['lago_id']}")

    assert response.status_code == 200
    assert response.json()["webhook_endpoint"] == endpoint
    assert state.webhook_endpoints == {}


async def test_update_with_every_parameter(lago: httpx.AsyncClient) -> None:
    """webhook_endpoints_controller_spec.rb: PUT, context "when all parameters are provided",
    it "updates a webhook endpoint"."""
    endpoint = await created(lago)
    params = {
        "webhook_url": "http://foo.bar",
        "signature_algo": "hmac",
        "name": "Updated Webhook",
        "event_types": ["invoice.created", "invoice.voided"],
    }

    response = await update(lago, endpoint["lago_id"], **params)

    assert response.status_code == 200
    updated = response.json()["webhook_endpoint"]
    assert {key: updated[key] for key in params} == params


@pytest.mark.parametrize("event_types", [None, []])
async def test_update_event_types_to_null_or_empty(
    lago: httpx.AsyncClient, event_types: list[str] | None
) -> None:
    """webhook_endpoints_controller_spec.rb: PUT, contexts "when event_types is explicitly
    set to null" and "... to empty array", it "updates a webhook endpoint"."""
    endpoint = await created(lago, event_types=["customer.created"])

    response = await update(lago, endpoint["lago_id"], event_types=event_types)

    assert response.status_code == 200
    assert response.json()["webhook_endpoint"]["event_types"] == event_types


async def test_update_of_the_url_keeps_the_signature_algo(lago: httpx.AsyncClient) -> None:
    """webhook_endpoints_controller_spec.rb: PUT, context "when only webhook_url is
    provided", it "updates webhook_url without resetting signature_algo"."""
    endpoint = await created(lago)

    response = await update(lago, endpoint["lago_id"], webhook_url="http://foo.bar")

    assert response.status_code == 200
    updated = response.json()["webhook_endpoint"]
    assert (updated["webhook_url"], updated["signature_algo"]) == ("http://foo.bar", "jwt")


async def test_update_to_a_url_taken_by_another_endpoint(lago: httpx.AsyncClient) -> None:
    """WebhookEndpoint: ``validates :webhook_url, uniqueness: {scope: :organization_id}``;
    an endpoint keeping its own URL is no clash."""
    await created(lago)
    other = await created(lago, webhook_url="https://hooks.test/b")

    clash = await update(lago, other["lago_id"], webhook_url="https://hooks.test/a")
    same = await update(lago, other["lago_id"], webhook_url="https://hooks.test/b", name="n")

    assert clash.status_code == 422
    assert clash.json()["error_details"] == {"webhook_url": ["value_already_exist"]}
    assert same.status_code == 200


async def test_an_eleventh_endpoint_is_exceeded_limit_but_updates_are_not(
    lago: httpx.AsyncClient,
) -> None:
    """WebhookEndpoint#max_webhook_endpoints (LIMIT = 10) validates on create only."""
    first = await created(lago)
    for index in range(9):
        await created(lago, webhook_url=f"https://hooks.test/{index}")

    eleventh = await create(lago, webhook_url="https://hooks.test/11")
    renamed = await update(lago, first["lago_id"], name="still ten")

    assert eleventh.status_code == 422
    assert eleventh.json()["error_details"] == {"base": ["exceeded_limit"]}
    assert renamed.status_code == 200


async def test_empty_event_types_receive_no_webhook(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """Webhooks::BaseService: ``event_types`` null is every type, ``[]`` is none."""
    await created(lago, event_types=[])
    await created(lago, webhook_url="https://hooks.test/all")

    await lago.post("/customers", json={"customer": {"external_id": "acme"}})

    assert {w.url for w in state.webhooks_pending} == {"https://hooks.test/all"}
