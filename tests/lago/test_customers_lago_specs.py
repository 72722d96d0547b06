"""Lago's spec/requests/api/v1/customers_controller_spec.rb, ported to the emulator.

Each test names the ``describe``/``context``/``it`` it ports. Cases for features the emulator
does not have (billing entities, payment providers, integrations, custom sections, portal and
checkout URLs, tax identification filters) are not ported.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = pytest.mark.asyncio

SPEC = "spec/requests/api/v1/customers_controller_spec.rb"


async def create(lago: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await lago.post("/customers", json={"customer": params})


async def test_create_returns_a_success(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: POST /api/v1/customers, it "returns a success"."""
    params = {
        "external_id": "ext-1",
        "name": "Foo Bar Inc.",
        "firstname": "Foo",
        "lastname": "Bar",
        "customer_type": "company",
        "currency": "EUR",
        "external_salesforce_id": "foobar",
    }
    response = await create(lago, **params)

    assert response.status_code == 200
    customer = response.json()["customer"]
    assert customer["lago_id"] and customer["created_at"]
    assert {key: customer[key] for key in params} == params
    assert customer["account_type"] == "customer"
    assert customer["billing_entity_code"] == "default"


async def test_null_bytes_are_stripped_from_names(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: POST, context "when firstname and lastname contain null
    bytes", it "strips the null bytes instead of returning a 500"."""
    response = await create(
        lago, external_id="ext-1", name="Foo\u0000Bar", firstname="\u0000", lastname="\u0000"
    )

    assert response.status_code == 200
    customer = response.json()["customer"]
    assert (customer["name"], customer["firstname"], customer["lastname"]) == ("FooBar", "", "")


async def test_finalize_zero_amount_invoice_is_stored(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: POST, context "with finalize_zero_amount_invoice",
    it "returns a success"."""
    response = await create(lago, external_id="ext-1", finalize_zero_amount_invoice="skip")

    assert response.json()["customer"]["finalize_zero_amount_invoice"] == "skip"


async def test_an_unknown_finalize_zero_amount_invoice_is_invalid_value(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """UpsertFromApiService#valid_finalize_zero_amount_invoice? (the spec's service side)."""
    response = await create(lago, external_id="ext-1", finalize_zero_amount_invoice="never")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"finalize_zero_amount_invoice": ["invalid_value"]}
    assert state.customers == {}


async def test_metadata_is_returned(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: POST, context "with metadata", it "returns a success"."""
    response = await create(
        lago,
        external_id="ext-1",
        name="Foo Bar",
        metadata=[{"key": "Hello", "value": "Hi", "display_in_invoice": True}],
    )

    metadata = response.json()["customer"]["metadata"]
    assert [(m["key"], m["value"], m["display_in_invoice"]) for m in metadata] == [
        ("Hello", "Hi", True)
    ]


async def test_metadata_updates_by_id_and_drops_the_rest(lago: httpx.AsyncClient) -> None:
    """Customers::Metadata::UpdateService: an item naming a stored ``id`` keeps it, others
    are created, entries not named are deleted."""
    first = await create(
        lago,
        external_id="ext-1",
        metadata=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}],
    )
    kept = first.json()["customer"]["metadata"][0]["lago_id"]

    second = await create(
        lago,
        external_id="ext-1",
        metadata=[{"id": kept, "key": "a", "value": "9"}, {"key": "c", "value": "3"}],
    )

    metadata = second.json()["customer"]["metadata"]
    assert [(m["key"], m["value"]) for m in metadata] == [("a", "9"), ("c", "3")]
    assert metadata[0]["lago_id"] == kept


async def test_more_than_five_metadata_is_invalid_count(lago: httpx.AsyncClient) -> None:
    """UpsertFromApiService#valid_metadata_count? (COUNT_PER_CUSTOMER = 5)."""
    items = [{"key": f"k{i}", "value": "v"} for i in range(6)]
    response = await create(lago, external_id="ext-1", metadata=items)

    assert response.status_code == 422
    assert response.json()["error_details"] == {"metadata": ["invalid_count"]}


async def test_invisible_characters_leave_the_email(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: POST, context "with invisible characters in email",
    it "removes invisible characters from email"."""
    email = "\u200bfoo\u200c@\u200dexample\u00a0.com\ufeff"
    response = await create(lago, external_id="ext-1", email=email)

    assert response.json()["customer"]["email"] == "foo@example.com"


async def test_a_unicode_local_part_is_kept_and_updatable(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: POST, context "with a unicode local-part in email",
    it "creates the customer and preserves the email", context "when the customer already
    exists", it "updates the email"."""
    created = await create(lago, external_id="ext-1", email="joão.silva@example.com")
    updated = await create(lago, external_id="ext-1", email="maría@example.com")

    assert created.json()["customer"]["email"] == "joão.silva@example.com"
    assert updated.json()["customer"]["email"] == "maría@example.com"


async def test_a_malformed_email_is_invalid_email_format(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: POST, context "when the email is malformed",
    it "returns an unprocessable_entity"."""
    response = await create(lago, external_id="ext-1", name="Foo Bar Inc.", email="joão.silva@")

    assert response.status_code == 422
    assert "invalid_email_format" in response.json()["error_details"]["email"]


async def test_without_the_customer_root_is_400(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: POST, context "with invalid params" (``"customer"``)."""
    response = await lago.post("/customers", json={"customer": "customer"})

    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert response.json()["error"].startswith("BadRequest: param is missing")


async def test_invalid_currency_and_missing_external_id_are_both_named(
    lago: httpx.AsyncClient,
) -> None:
    """customers_controller_spec.rb: POST, context "with invalid params" (no external_id,
    currency "invalid"): 422 with both fields."""
    response = await create(lago, name="Foo Bar", currency="invalid")

    assert response.status_code == 422
    assert response.json() == {
        "status": 422,
        "code": "validation_errors",
        "error": "Unprocessable Entity",
        "error_details": {"currency": ["value_is_invalid"], "external_id": ["value_is_mandatory"]},
    }


async def test_country_is_upper_cased(lago: httpx.AsyncClient) -> None:
    """UpsertFromApiService: ``customer.country = params[:country]&.upcase``."""
    response = await create(lago, external_id="ext-1", country="fr")

    assert response.json()["customer"]["country"] == "FR"


async def test_list_returns_all_customers_with_meta(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: GET /api/v1/customers, it "returns all customers from
    organization"."""
    for external_id in ("a", "b"):
        await create(lago, external_id=external_id)

    body = (await lago.get("/customers")).json()

    assert body["meta"]["total_count"] == 2
    assert body["customers"][0]["taxes"] is not None


async def test_list_filters_by_external_id(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: GET, context "when filtering by external_id"."""
    for external_id in ("a", "b"):
        await create(lago, external_id=external_id)

    body = (await lago.get("/customers", params={"external_id": "b"})).json()

    assert [c["external_id"] for c in body["customers"]] == ["b"]


@pytest.mark.parametrize(
    ("name", "field", "values", "wanted"),
    [
        ("countries", "country", ["US", "FR"], ["a", "b"]),
        ("countries", "country", ["ZZ"], []),
        ("currencies", "currency", ["USD", "EUR"], ["a", "b"]),
        ("states", "state", ["CA", "NY"], ["a", "b"]),
        ("zipcodes", "zipcode", ["10001", "75001"], ["a", "b"]),
    ],
)
async def test_list_filters_by_address_and_currency(
    lago: httpx.AsyncClient, name: str, field: str, values: list[str], wanted: list[str]
) -> None:
    """customers_controller_spec.rb: GET, contexts "when filtering by countries", "by invalid
    country", "by states", "by zipcodes", "by currencies": two of three customers match."""
    rows = {
        "a": {"country": "US", "currency": "USD", "state": "CA", "zipcode": "10001"},
        "b": {"country": "FR", "currency": "EUR", "state": "NY", "zipcode": "75001"},
        "c": {"country": "DE", "currency": "GBP", "state": "BE", "zipcode": "10115"},
    }
    for external_id, fields in rows.items():
        await create(lago, external_id=external_id, **fields)

    body = (await lago.get("/customers", params={f"{name}[]": values})).json()

    assert [c["external_id"] for c in body["customers"]] == wanted
    assert all(c[field] in values for c in body["customers"])


async def test_list_filters_by_search_term(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: GET, context "when filtering by search_term"."""
    await create(lago, external_id="a", name="Gandalf")
    await create(lago, external_id="b", name="Frodo", email="ring@shire.test")

    body = (await lago.get("/customers", params={"search_term": "SHIRE"})).json()

    assert [c["external_id"] for c in body["customers"]] == ["b"]


async def test_show_returns_the_customer(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: GET /api/v1/customers/:customer_id, context "when
    customer exists", it "returns the customer"."""
    created = (await create(lago, external_id="ext-1")).json()["customer"]

    response = await lago.get("/customers/ext-1")

    assert response.status_code == 200
    assert response.json()["customer"]["lago_id"] == created["lago_id"]
    assert response.json()["customer"]["taxes"] is not None


async def test_show_unknown_is_404(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: GET /api/v1/customers/:customer_id, context "when
    customer does not exist", it "returns a not found error"."""
    response = await lago.get("/customers/nobody")

    assert response.status_code == 404
    assert response.json()["code"] == "customer_not_found"


async def test_delete_returns_the_deleted_customer(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """customers_controller_spec.rb: DELETE /api/v1/customers/:customer_id, it "deletes a
    customer", it "returns deleted customer"."""
    created = (await create(lago, external_id="ext-1")).json()["customer"]

    response = await lago.delete("/customers/ext-1")

    assert response.status_code == 200
    assert response.json()["customer"]["lago_id"] == created["lago_id"]
    assert response.json()["customer"]["external_id"] == "ext-1"
    assert state.customers == {}


async def test_delete_unknown_is_404(lago: httpx.AsyncClient) -> None:
    """customers_controller_spec.rb: DELETE, context "when customer does not exist",
    it "returns not_found error"."""
    response = await lago.delete("/customers/nobody")

    assert response.status_code == 404
    assert response.json()["code"] == "customer_not_found"
