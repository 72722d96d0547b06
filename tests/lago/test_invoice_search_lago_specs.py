"""Lago's spec/queries/invoices_query_spec.rb ``search_term`` cases, ported to the emulator's
``GET /invoices?search_term=`` (InvoicesQuery#matching_invoices)."""

from __future__ import annotations

import httpx
import pytest

from lago.emulator import EmulatorState
from lago.emulator.customers import upsert_customer

pytestmark = pytest.mark.asyncio


@pytest.fixture
def invoices(state: EmulatorState) -> dict[str, str]:
    """The spec's two customers (Rick, Morty) and their invoices, numbers as in the spec."""
    upsert_customer(
        state,
        {
            "external_id": "rick-ext",
            "name": "Rick Sanchez",
            "firstname": "RickFirst",
            "lastname": "SanchezLast",
            "email": "pickle@hotmail.com",
            "currency": "EUR",
        },
    )
    upsert_customer(
        state,
        {
            "external_id": "morty-ext",
            "name": "Morty Smith",
            "firstname": "MortyFirst",
            "lastname": "SmithLast",
            "email": "ilovejessica@gmail.com",
            "currency": "EUR",
        },
    )
    made = {}
    for name, customer, number in (
        ("first", "rick-ext", "1111111111"),
        ("second", "morty-ext", "2222222222"),
        ("third", "rick-ext", "3333333333"),
        ("fourth", "morty-ext", "4444444444"),
    ):
        issued = state.issue_invoice(customer, 1000, currency="EUR")
        state.invoices[issued["lago_id"]]["number"] = number
        made[name] = str(issued["lago_id"])
    return made


async def _found(lago: httpx.AsyncClient, **query: str) -> set[str]:
    answer = await lago.get("/invoices", params=query)
    assert answer.status_code == 200
    return {invoice["lago_id"] for invoice in answer.json()["invoices"]}


async def test_searching_for_2222_returns_one_invoice(
    lago: httpx.AsyncClient, invoices: dict[str, str]
) -> None:
    """context "with searching for /2222/ term": it "returns 1 invoices"."""
    assert await _found(lago, search_term="2222") == {invoices["second"]}


async def test_searching_a_full_invoice_id_returns_it(
    lago: httpx.AsyncClient, invoices: dict[str, str]
) -> None:
    """context "when searching for a full invoice id (UUID)"; and a partial one matches no id."""
    assert await _found(lago, search_term=invoices["fourth"]) == {invoices["fourth"]}
    assert await _found(lago, search_term=invoices["fourth"][:10]) == set()
    assert await _found(lago, search_term="abcdef12") == set()


async def test_searching_a_number_or_a_customer_external_id(
    lago: httpx.AsyncClient, invoices: dict[str, str]
) -> None:
    """contexts "when searching an invoice number" and "... a customer external id"."""
    assert await _found(lago, search_term="1111111111") == {invoices["first"]}
    morty = await _found(lago, search_term="morty-ext")
    assert morty == {invoices["second"], invoices["fourth"]}


@pytest.mark.parametrize("term", ["rick", "RickFirst", "sanchezlast", "pickle@"])
async def test_searching_a_customers_name_parts_or_email(
    lago: httpx.AsyncClient, invoices: dict[str, str], term: str
) -> None:
    """contexts "when searching for /rick/ term", firstname, lastname and email (ILIKE)."""
    assert await _found(lago, search_term=term) == {invoices["first"], invoices["third"]}


async def test_with_a_customer_filter_only_numbers_and_ids_are_searched(
    lago: httpx.AsyncClient, invoices: dict[str, str]
) -> None:
    """InvoicesQuery#search_customers?: false when a customer is filtered on."""
    assert await _found(lago, search_term="rick", external_customer_id="rick-ext") == set()
    found = await _found(lago, search_term="3333", external_customer_id="rick-ext")
    assert found == {invoices["third"]}
