"""Lago's spec/requests/api/v1/add_ons_controller_spec.rb, ported to the emulator, with the
checks of app/models/add_on.rb and app/services/add_ons/{create,update,destroy}_service.rb.

Each test names the ``describe``/``context``/``it`` it ports. Exchanges are checked against
Lago's OpenAPI spec. Not ported: API key permissions, taxes (the emulator has none, so
``taxes`` is always ``[]``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lago.emulator import EmulatorState, create_app

pytestmark = pytest.mark.asyncio

ADD_ON = {
    "name": "add_on1",
    "invoice_display_name": "Addon 1 invoice name",
    "code": "add_on1_code",
    "amount_cents": 123,
    "amount_currency": "EUR",
    "description": "description",
}


@pytest_asyncio.fixture
async def checked(
    state: EmulatorState, make_client: Any, require_spec: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator with every exchange checked against Lago's OpenAPI spec."""
    async with make_client(create_app(state, api_key="test-lago-key", validate=True)) as client:
        yield client
    assert state.contract_violations == []


async def create(lago: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await lago.post("/add_ons", json={"add_on": params})


async def test_create_an_add_on(checked: httpx.AsyncClient, state: EmulatorState) -> None:
    """POST /api/v1/add_ons, it "creates a add-on"."""
    response = await create(checked, **ADD_ON)

    assert response.status_code == 200
    add_on = response.json()["add_on"]
    assert add_on["lago_id"] and add_on["created_at"]
    assert (add_on["code"], add_on["name"]) == ("add_on1_code", "add_on1")
    assert add_on["invoice_display_name"] == "Addon 1 invoice name"
    assert add_on["taxes"] == []
    assert state.add_ons["add_on1_code"]["lago_id"] == add_on["lago_id"]


async def test_create_reports_every_failed_validation(lago: httpx.AsyncClient) -> None:
    """app/models/add_on.rb: name and code present, amount_cents > 0, a known currency (a body
    the OpenAPI spec refuses, so sent unchecked)."""
    response = await create(lago, code="", amount_cents=0, amount_currency="XXX")

    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "name": ["value_is_mandatory"],
        "code": ["value_is_mandatory"],
        "amount_cents": ["value_is_out_of_range"],
        "amount_currency": ["value_is_invalid"],
    }


async def test_update_an_add_on(checked: httpx.AsyncClient, state: EmulatorState) -> None:
    """PUT /api/v1/add_ons/:code, it "updates an add-on" (the code changes too)."""
    created = (await create(checked, **ADD_ON)).json()["add_on"]
    changes = {**ADD_ON, "code": "add_on_code", "invoice_display_name": "Addon 1 updated"}

    response = await checked.put("/add_ons/add_on1_code", json={"add_on": changes})

    assert response.status_code == 200
    add_on = response.json()["add_on"]
    assert add_on["lago_id"] == created["lago_id"]
    assert (add_on["code"], add_on["invoice_display_name"]) == ("add_on_code", "Addon 1 updated")
    assert list(state.add_ons) == ["add_on_code"]


async def test_update_sets_only_the_fields_given(checked: httpx.AsyncClient) -> None:
    """AddOns::UpdateService: each field is set only when its key is given."""
    await create(checked, **ADD_ON)

    response = await checked.put("/add_ons/add_on1_code", json={"add_on": {"amount_cents": 500}})

    assert response.json()["add_on"]["amount_cents"] == 500
    assert response.json()["add_on"]["name"] == "add_on1"


async def test_update_an_unknown_add_on(checked: httpx.AsyncClient) -> None:
    """PUT /api/v1/add_ons/:code, context "when add-on does not exist"."""
    response = await checked.put("/add_ons/nope", json={"add_on": ADD_ON})

    assert response.status_code == 404
    assert response.json()["code"] == "add_on_not_found"


async def test_update_to_a_code_taken_in_the_organization(checked: httpx.AsyncClient) -> None:
    """PUT /api/v1/add_ons/:code, context "when add-on code already exists in organization
    scope (validation error)"."""
    await create(checked, **ADD_ON)
    await create(checked, **{**ADD_ON, "code": "other"})

    response = await checked.put("/add_ons/add_on1_code", json={"add_on": {"code": "other"}})

    assert response.status_code == 422
    assert response.json()["error_details"] == {"code": ["value_already_exist"]}


async def test_show_an_add_on(checked: httpx.AsyncClient) -> None:
    """GET /api/v1/add_ons/:code, it "returns a add-on", and context "when add-on does not
    exist"."""
    created = (await create(checked, **ADD_ON)).json()["add_on"]

    found = await checked.get("/add_ons/add_on1_code")
    missing = await checked.get("/add_ons/unknown")

    assert found.json()["add_on"]["lago_id"] == created["lago_id"]
    assert found.json()["add_on"]["invoice_display_name"] == "Addon 1 invoice name"
    assert missing.status_code == 404


async def test_destroy_an_add_on(checked: httpx.AsyncClient, state: EmulatorState) -> None:
    """DELETE /api/v1/add_ons/:code, it "deletes a add-on" and "returns deleted add-on"; the
    code is free again (the uniqueness ignores discarded add-ons)."""
    created = (await create(checked, **ADD_ON)).json()["add_on"]

    response = await checked.delete("/add_ons/add_on1_code")

    assert response.status_code == 200
    assert response.json()["add_on"]["lago_id"] == created["lago_id"]
    assert state.add_ons == {}
    assert (await checked.get("/add_ons/add_on1_code")).status_code == 404
    assert (await create(checked, **ADD_ON)).status_code == 200


async def test_destroy_an_unknown_add_on(checked: httpx.AsyncClient) -> None:
    """DELETE /api/v1/add_ons/:code, context "when add-on does not exist"."""
    response = await checked.delete("/add_ons/unknown")

    assert response.status_code == 404


async def test_list_add_ons_with_pagination(checked: httpx.AsyncClient) -> None:
    """GET /api/v1/add_ons, it "returns add-ons" and context "with pagination"; newest first
    (BaseQuery::DEFAULT_ORDER)."""
    await create(checked, **ADD_ON)
    await create(checked, **{**ADD_ON, "code": "second"})

    everything = await checked.get("/add_ons")
    page = await checked.get("/add_ons", params={"page": 1, "per_page": 1})

    assert [a["code"] for a in everything.json()["add_ons"]] == ["second", "add_on1_code"]
    assert len(page.json()["add_ons"]) == 1
    assert page.json()["meta"] == {
        "current_page": 1,
        "next_page": 2,
        "prev_page": None,
        "total_pages": 2,
        "total_count": 2,
    }
